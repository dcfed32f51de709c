using Distill.Core.Distillation;
using Distill.Core.Runs;
using Distill.Core.Tests;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using Grpc.Net.Client;
using RunEvent = Distill.Protos.Distiller.V1.RunEvent;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests;

/// <summary>Real processes, killed and restarted: the guarantees a user relies on when machines fail.</summary>
public sealed class CrashRecoveryTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("distill-crash-");
    private string DataRoot => Path.Combine(_directory.FullName, "data");
    private string DataFolder => Path.Combine(_directory.FullName, "distiller");

    public CrashRecoveryTests() => TinyDataset.Write(DataRoot, trainPerClass: 200, testPerClass: 20);

    private static RunSpec Spec() => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 2, Steps = 150, TargetBatch = 1000, LearningRate = 0.05, CheckpointEvery = 5, Seed = 11,
    };

    private Task<ServiceProcess> StartKernelAsync(int port) =>
        ServiceProcess.StartAsync("Distill.KernelService", port, $"--KernelService:DataRoot={DataRoot}");

    private Task<ServiceProcess> StartDistillerAsync(string kernelAddress) =>
        ServiceProcess.StartAsync("Distill.DistillerService", ServiceProcess.FreePort(), $"--Distiller:DataRoot={DataRoot}",
            $"--Distiller:DataFolder={DataFolder}", $"--Distiller:KernelServices:0={kernelAddress}",
            "--Distiller:RetryAttempts=2", "--Distiller:ProbeIntervalSeconds=0.2");

    [Fact]
    public async Task Distiller_KilledMidRun_ResumesFromCheckpointAndEndsLikeAnUninterruptedRun()
    {
        await using var kernel = await StartKernelAsync(ServiceProcess.FreePort());
        string interruptedId;
        await using (var first = await StartDistillerAsync(kernel.Address))
        {
            using var channel = GrpcChannel.ForAddress(first.Address);
            var client = new DistillerClient(channel);
            interruptedId = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
            using var watch = client.WatchRun(new WatchRunRequest { Name = interruptedId });
            await foreach (var e in watch.ResponseStream.ReadAllAsync())
                if (e.Progress?.Step >= 23) break;
            first.Kill();
        }
        Assert.True(Stored(interruptedId).Step < Spec().Steps, "the kill came before the end");

        await using var second = await StartDistillerAsync(kernel.Address);
        using var secondChannel = GrpcChannel.ForAddress(second.Address);
        var secondClient = new DistillerClient(secondChannel);
        var resumedEvents = await WatchToEndAsync(secondClient, interruptedId);
        Assert.Equal(RunState.Succeeded, resumedEvents[^1].State.State);
        Assert.Contains(resumedEvents, e => e.State?.Message.StartsWith("resumed from step", StringComparison.Ordinal) == true);

        var uninterruptedId = (await secondClient.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
        Assert.Equal(RunState.Succeeded, (await WatchToEndAsync(secondClient, uninterruptedId))[^1].State.State);

        // Same seed, same batches, same arithmetic: the resumed run ends bit for bit where the other does.
        Assert.Equal(Support(uninterruptedId), Support(interruptedId));
    }

    [Fact]
    public async Task KernelService_StoppedAndRestartedMidRun_RunPausesThenFinishes()
    {
        var port = ServiceProcess.FreePort();
        var kernel = await StartKernelAsync(port);
        await using var distiller = await StartDistillerAsync(kernel.Address);
        using var channel = GrpcChannel.ForAddress(distiller.Address);
        var client = new DistillerClient(channel);
        var id = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;

        var events = new List<RunEvent>();
        using (var watch = client.WatchRun(new WatchRunRequest { Name = id }))
        {
            await foreach (var e in watch.ResponseStream.ReadAllAsync())
            {
                events.Add(e);
                if (e.Progress?.Step >= 10) break;
            }
        }
        kernel.Kill();
        using (var watch = client.WatchRun(new WatchRunRequest { Name = id, AfterSequence = events[^1].Sequence }))
        {
            await foreach (var e in watch.ResponseStream.ReadAllAsync())
            {
                events.Add(e);
                if (e.State?.State == RunState.Paused) break;
            }
        }
        Assert.Equal(RunState.Paused, (await client.GetRunAsync(new GetRunRequest { Name = id })).State);

        await using var restarted = await StartKernelAsync(port);
        events.AddRange(await WatchToEndAsync(client, id, events[^1].Sequence));
        Assert.Equal(RunState.Succeeded, events[^1].State.State);
        Assert.Contains(events, e => e.State?.Message.Contains("reachable again") == true);
        await kernel.DisposeAsync();
    }

    private static async Task<List<RunEvent>> WatchToEndAsync(DistillerClient client, string id, long after = 0)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using var watch = client.WatchRun(new WatchRunRequest { Name = id, AfterSequence = after }, cancellationToken: cancel.Token);
        var events = new List<RunEvent>();
        await foreach (var e in watch.ResponseStream.ReadAllAsync(cancel.Token)) events.Add(e);
        return events;
    }

    private Run Stored(string id)
    {
        // Read the store's own file, as the next process will.
        using var store = new Runs.RunStore(Microsoft.Extensions.Options.Options.Create(new Configuration.DistillerOptions { DataFolder = DataFolder }), TimeProvider.System);
        return store.Get(id["runs/".Length..])!;
    }

    private double[] Support(string id)
    {
        using var state = KipState.Load(Path.Combine(DataFolder, "runs", id["runs/".Length..], LocalRun.CheckpointFile));
        Assert.Equal(Spec().Steps, state.Step);
        return TensorAssert.ToArray(state.SupportImages);
    }

    public void Dispose() => _directory.Delete(recursive: true);
}
