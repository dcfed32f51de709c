using Distill.DistillerService.Extensions;
using Distill.KernelService.Extensions;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests;

/// <summary>
/// Kernel services and a distiller, each a real Kestrel host on an ephemeral 127.0.0.1
/// port in this process, talking gRPC over HTTP/2, sharing a data root with a tiny dataset.
/// </summary>
public sealed class LoopbackCluster : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];
    private readonly DirectoryInfo _directory;

    private LoopbackCluster(DirectoryInfo directory)
    {
        _directory = directory;
        DataRoot = Path.Combine(directory.FullName, "data");
        DataFolder = Path.Combine(directory.FullName, "distiller");
        TinyDataset.Write(DataRoot);
    }

    public string DataRoot { get; }
    public string DataFolder { get; }
    public List<string> KernelAddresses { get; } = [];
    public GrpcChannel Channel { get; private set; } = null!;
    public DistillerClient Client { get; private set; } = null!;

    public static async Task<LoopbackCluster> StartAsync(int kernelServices = 1, IDictionary<string, string?>? distillerSettings = null,
        IDictionary<string, string?>? kernelSettings = null)
    {
        var cluster = new LoopbackCluster(Directory.CreateTempSubdirectory("distill-cluster-"));
        for (int i = 0; i < kernelServices; i++)
        {
            var kernelConfiguration = new Dictionary<string, string?>(kernelSettings ?? new Dictionary<string, string?>()) { ["KernelService:DataRoot"] = cluster.DataRoot };
            var kernel = KernelServiceHost.Build(["--urls", "http://127.0.0.1:0"], builder => Quiet(builder, kernelConfiguration));
            cluster.KernelAddresses.Add(await cluster.StartAsync(kernel));
            cluster._kernels.Add(kernel);
        }
        var settings = new Dictionary<string, string?>
        {
            ["Distiller:DataRoot"] = cluster.DataRoot,
            ["Distiller:DataFolder"] = cluster.DataFolder,
            ["Distiller:ProbeIntervalSeconds"] = "0.2",
        };
        for (int i = 0; i < cluster.KernelAddresses.Count; i++) settings[$"Distiller:KernelServices:{i}"] = cluster.KernelAddresses[i];
        foreach (var (key, value) in distillerSettings ?? new Dictionary<string, string?>()) settings[key] = value;
        cluster._distillerSettings = settings;
        await cluster.StartDistillerAsync();
        return cluster;
    }

    private Dictionary<string, string?> _distillerSettings = [];
    private WebApplication? _distiller;

    /// <summary>The distiller host now running (null while stopped).</summary>
    public WebApplication? Distiller => _distiller;

    /// <summary>Starts a distiller on the same data folder and kernel services (a restart after <see cref="StopDistillerAsync"/>).</summary>
    public async Task StartDistillerAsync()
    {
        var distiller = DistillerServiceHost.Build(["--urls", "http://127.0.0.1:0"], builder => Quiet(builder, _distillerSettings));
        await distiller.StartAsync();
        _distiller = distiller;
        Channel?.Dispose();
        Channel = GrpcChannel.ForAddress(AddressOf(distiller));
        Client = new DistillerClient(Channel);
    }

    /// <summary>A graceful stop: runs are cancelled and checkpoint; returns when the host has stopped.</summary>
    public async Task StopDistillerAsync()
    {
        if (_distiller is null) return;
        await _distiller.StopAsync();
        await _distiller.DisposeAsync();
        _distiller = null;
    }

    public async Task RestartDistillerAsync()
    {
        await StopDistillerAsync();
        await StartDistillerAsync();
    }

    /// <summary>Stops kernel service <paramref name="index"/> (an outage).</summary>
    public async Task StopKernelAsync(int index = 0)
    {
        await _kernels[index].StopAsync();
    }

    private readonly List<WebApplication> _kernels = [];

    /// <summary>A client of kernel service <paramref name="index"/>, to see what it holds.</summary>
    public Distill.Protos.Kernel.V1.KernelService.KernelServiceClient KernelClient(int index = 0) =>
        new(GrpcChannel.ForAddress(KernelAddresses[index]));

    public static RunSpec Spec(int steps = 20) => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 1, Steps = steps, TargetBatch = 100, LearningRate = 0.05,
        EvaluateEvery = 10, CheckpointEvery = 5, Seed = 7,
    };

    /// <summary>Reads a run's events (with follow) until <paramref name="until"/> holds for one; returns them all.</summary>
    public async Task<List<RunEvent>> WatchUntilAsync(string name, Func<RunEvent, bool> until, long afterSequence = 0)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var call = Client.WatchRun(new WatchRunRequest { Name = name, AfterSequence = afterSequence, Follow = true }, cancellationToken: cancel.Token);
        var events = new List<RunEvent>();
        await foreach (var e in call.ResponseStream.ReadAllAsync(cancel.Token))
        {
            events.Add(e);
            if (until(e)) break;
        }
        return events;
    }

    /// <summary>Watches a run from just after <paramref name="afterSequence"/> until it ends; returns every event.</summary>
    public async Task<List<RunEvent>> WatchToEndAsync(string name, long afterSequence = 0, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        using var call = Client.WatchRun(new WatchRunRequest { Name = name, AfterSequence = afterSequence }, cancellationToken: cancel.Token);
        var events = new List<RunEvent>();
        await foreach (var e in call.ResponseStream.ReadAllAsync(cancel.Token)) events.Add(e);
        return events;
    }

    /// <summary>The folder of a run, by its name runs/{run}.</summary>
    public string RunFolder(string name) => Path.Combine(DataFolder, "runs", name["runs/".Length..]);

    private async Task<string> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        _apps.Add(app);
        return AddressOf(app);
    }

    /// <summary>The address a started host listens on.</summary>
    internal static string AddressOf(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    internal static void Quiet(WebApplicationBuilder builder, IDictionary<string, string?> settings)
    {
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
    }

    public async ValueTask DisposeAsync()
    {
        await StopDistillerAsync();
        Channel?.Dispose();
        foreach (var app in Enumerable.Reverse(_apps))
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        _directory.Delete(recursive: true);
    }
}
