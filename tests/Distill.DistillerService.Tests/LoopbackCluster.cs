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
        }
        var settings = new Dictionary<string, string?>
        {
            ["Distiller:DataRoot"] = cluster.DataRoot,
            ["Distiller:DataFolder"] = cluster.DataFolder,
            ["Distiller:ProbeIntervalSeconds"] = "0.2",
        };
        for (int i = 0; i < cluster.KernelAddresses.Count; i++) settings[$"Distiller:KernelServices:{i}"] = cluster.KernelAddresses[i];
        foreach (var (key, value) in distillerSettings ?? new Dictionary<string, string?>()) settings[key] = value;
        var distiller = DistillerServiceHost.Build(["--urls", "http://127.0.0.1:0"], builder => Quiet(builder, settings));
        var address = await cluster.StartAsync(distiller);
        cluster.Channel = GrpcChannel.ForAddress(address);
        cluster.Client = new DistillerClient(cluster.Channel);
        return cluster;
    }

    public static RunSpec Spec(int steps = 20) => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 1, Steps = steps, TargetBatch = 100, LearningRate = 0.05,
        EvaluateEvery = 10, CheckpointEvery = 5, Seed = 7,
    };

    /// <summary>Watches a run from just after <paramref name="afterSequence"/> until it ends; returns every event.</summary>
    public async Task<List<RunEvent>> WatchToEndAsync(string runId, long afterSequence = 0, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        using var call = Client.WatchRun(new WatchRunRequest { Name = runId, AfterSequence = afterSequence }, cancellationToken: cancel.Token);
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
        Channel?.Dispose();
        foreach (var app in Enumerable.Reverse(_apps))
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        _directory.Delete(recursive: true);
    }
}
