using Distill.Core.Runtime;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Distill.KernelService.Configuration;
using Distill.KernelService.Datasets;
using Distill.KernelService.FeaturePools;
using Distill.KernelService.Grpc;
using Distill.KernelService.Telemetry;
using Distill.ServiceDefaults;

namespace Distill.KernelService.Extensions;

/// <summary>Builds the kernel service host; tests build the same host on a loopback port.</summary>
public static class KernelServiceHost
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        builder.AddServiceDefaults("distill-kernel", [KernelServiceMetrics.MeterName],
            grpc => grpc.Interceptors.Add<ComputeGateInterceptor>());
        builder.AddKernelService();

        var app = builder.Build();
        var kernelOptions = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<KernelServiceOptions>>().Value;
        TorchRuntime.Configure(kernelOptions.Threads);
        TorchRuntime.UseDevice(kernelOptions.Device, "KernelService:Device");
        app.MapServiceDefaults();
        app.MapGrpcService<KernelGrpcService>();
        return app;
    }

    public static WebApplicationBuilder AddKernelService(this WebApplicationBuilder builder)
    {
        // A limit of zero or less would refuse or break every call: refuse it at start instead.
        builder.Services.AddOptions<KernelServiceOptions>().Bind(builder.Configuration.GetSection(KernelServiceOptions.Section))
            .ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<KernelServiceMetrics>();
        builder.Services.TryAddSingleton(TimeProvider.System);
        // gRPC activates interceptors per call unless DI holds one: the gate's slots must be shared.
        builder.Services.AddSingleton<ComputeGateInterceptor>();
        builder.Services.AddSingleton<DatasetRegistry>();
        builder.Services.AddSingleton<FeaturePoolRegistry>();
        builder.Services.AddSingleton<RequestReader>();
        builder.Services.AddSingleton(services =>
        {
            var options = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<KernelServiceOptions>>().Value;
            return new TensorThreadPool(Math.Max(1, options.MaxConcurrentRequests), options.Threads, "kernel");
        });
        return builder;
    }
}
