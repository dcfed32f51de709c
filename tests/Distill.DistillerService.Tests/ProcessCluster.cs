using Distill.Core.Distillation;
using Distill.Core.Runs;
using Distill.Core.Tests;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using RunEvent = Distill.Protos.Distiller.V1.RunEvent;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests;

/// <summary>
/// A temporary data root with the tiny dataset and a distiller data folder, for services
/// started as their own processes (<see cref="ServiceProcess"/>) that tests kill and restart.
/// </summary>
public sealed class ProcessCluster : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("distill-process-");

    public ProcessCluster(string? dataFolder = null)
    {
        DataFolder = dataFolder ?? Path.Combine(_directory.FullName, "distiller");
        TinyDataset.Write(DataRoot, trainPerClass: 200, testPerClass: 20);
    }

    public string DataRoot => Path.Combine(_directory.FullName, "data");

    /// <summary>The distiller's data folder: its database and its runs' files.</summary>
    public string DataFolder { get; }

    public string RunFolder(string name) => Path.Combine(DataFolder, "runs", RunNames.Id(name));

    public Task<ServiceProcess> StartKernelAsync(int port) =>
        ServiceProcess.StartAsync("Distill.KernelService", port, $"--KernelService:DataRoot={DataRoot}");

    public Task<ServiceProcess> StartDistillerAsync(params string[] kernelAddresses) =>
        ServiceProcess.StartAsync("Distill.DistillerService", ServiceProcess.FreePort(), DistillerArguments(kernelAddresses));

    public string[] DistillerArguments(params string[] kernelAddresses) =>
    [
        $"--Distiller:DataRoot={DataRoot}", $"--Distiller:DataFolder={DataFolder}",
        .. kernelAddresses.Select((address, i) => $"--Distiller:KernelServices:{i}={address}"),
        "--Distiller:RetryAttempts=2", "--Distiller:ProbeIntervalSeconds=0.2",
    ];

    /// <summary>The run's events from <paramref name="after"/> until it ends (within <paramref name="limit"/>, 3 minutes unless given).</summary>
    public static async Task<List<RunEvent>> WatchToEndAsync(DistillerClient client, string name, long after = 0, TimeSpan? limit = null)
    {
        using var cancel = new CancellationTokenSource(limit ?? TimeSpan.FromMinutes(3));
        using var watch = client.WatchRun(new WatchRunRequest { Name = name, AfterSequence = after }, cancellationToken: cancel.Token);
        var events = new List<RunEvent>();
        await foreach (var e in watch.ResponseStream.ReadAllAsync(cancel.Token)) events.Add(e);
        return events;
    }

    /// <summary>
    /// The run's events from <paramref name="after"/> up to the first that <paramref name="until"/> accepts,
    /// or its end, or, with <paramref name="window"/>, the events of that long.
    /// </summary>
    public static async Task<List<RunEvent>> WatchUntilAsync(DistillerClient client, string name, Func<RunEvent, bool> until, long after = 0,
        TimeSpan? window = null)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using var windowEnd = new CancellationTokenSource(window ?? Timeout.InfiniteTimeSpan);
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token, windowEnd.Token);
        using var watch = client.WatchRun(new WatchRunRequest { Name = name, AfterSequence = after }, cancellationToken: either.Token);
        var events = new List<RunEvent>();
        try
        {
            await foreach (var e in watch.ResponseStream.ReadAllAsync(either.Token))
            {
                events.Add(e);
                if (until(e)) break;
            }
        }
        // The window's end cuts the call: grpc-dotnet reports that as CANCELLED, or, when it lands
        // mid-read, as UNAVAILABLE with the aborted request (seen in CI).
        catch (Exception e) when (windowEnd.IsCancellationRequested && e is OperationCanceledException or RpcException)
        {
        }
        return events;
    }

    /// <summary>The run as the store's own file holds it, read as the next process will.</summary>
    public Run Stored(string name)
    {
        using var store = new RunStore(Microsoft.Extensions.Options.Options.Create(new Configuration.DistillerOptions { DataFolder = DataFolder }), TimeProvider.System);
        return store.Get(RunNames.Id(name))!;
    }

    /// <summary>The support images of the run's final checkpoint, which must be at <paramref name="steps"/>.</summary>
    public double[] Support(string name, long steps)
    {
        using var state = KipState.Load(Path.Combine(RunFolder(name), LocalRun.CheckpointFile));
        Assert.Equal(steps, state.Step);
        return TensorAssert.ToArray(state.SupportImages);
    }

    public void Dispose() => _directory.Delete(recursive: true);
}
