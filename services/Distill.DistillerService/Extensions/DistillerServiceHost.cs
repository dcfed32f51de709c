using Distill.DistillerService.Configuration;
using Distill.DistillerService.Datasets;
using Distill.DistillerService.Export;
using Distill.DistillerService.Grpc;
using Distill.DistillerService.Kernels;
using Distill.DistillerService.Runs;
using Distill.DistillerService.Snapshots;
using Distill.ServiceDefaults;

namespace Distill.DistillerService.Extensions;

/// <summary>Builds the distiller host; tests build the same host on a loopback port.</summary>
public static class DistillerServiceHost
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        builder.AddServiceDefaults("distill-distiller", []);
        builder.AddDistiller();
        var app = builder.Build();
        var distillerOptions = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<DistillerOptions>>().Value;
        Core.Runtime.TorchRuntime.Configure(distillerOptions.Threads);
        Core.Runtime.TorchRuntime.UseDevice(distillerOptions.Device, "Distiller:Device");
        app.MapServiceDefaults();
        app.MapGrpcService<DistillerGrpcService>();
        return app;
    }

    public static WebApplicationBuilder AddDistiller(this WebApplicationBuilder builder)
    {
        // REST/JSON at each method's google.api.http route, beside gRPC.
        // The error details travel as Any in the JSON error body: their types must be known.
        builder.Services.AddGrpc().AddJsonTranscoding(json => json.TypeRegistry = Google.Protobuf.Reflection.TypeRegistry.FromMessages(
            Google.Rpc.ErrorInfo.Descriptor, Google.Rpc.BadRequest.Descriptor, Google.Rpc.ResourceInfo.Descriptor, Google.Rpc.QuotaFailure.Descriptor,
            Google.Rpc.RetryInfo.Descriptor, Google.Rpc.PreconditionFailure.Descriptor, Google.Rpc.DebugInfo.Descriptor));
        builder.Services.Configure<DistillerOptions>(builder.Configuration.GetSection(DistillerOptions.Section));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<RunStore>();
        builder.Services.AddSingleton<RunEventHub>();
        builder.Services.AddSingleton<RunEventRecorder>();
        builder.Services.AddSingleton<RunLifecycle>();
        builder.Services.AddSingleton<RunQueue>();
        builder.Services.AddSingleton<DatasetCache>();
        builder.Services.AddSingleton<DatasetFolders>();
        builder.Services.AddSingleton<KernelServicePool>();
        builder.Services.AddSingleton<KernelServiceStatuses>();
        builder.Services.AddSingleton<RunExecutor>();
        builder.Services.AddSingleton<RunWorkers>();
        builder.Services.AddHostedService(services => services.GetRequiredService<RunWorkers>());
        builder.Services.AddSingleton<RunOperations>();
        builder.Services.AddSingleton<RunWatcher>();
        builder.Services.AddSingleton<RunSnapshots>();
        builder.Services.AddSingleton<RunExporter>();
        builder.Services.AddSingleton<RunSupportSets>();
        builder.Services.AddSingleton<RunEvaluator>();
        builder.Services.AddSingleton<RunTransferEvaluator>();
        return builder;
    }
}
