using Distill.Protos.Distiller.V1;
using Grpc.Net.Client;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests;

/// <summary>Real processes, killed and restarted: the guarantees a user relies on when machines fail.</summary>
public sealed class CrashRecoveryTests : IDisposable
{
    private readonly ProcessCluster _cluster = new();

    private static RunSpec Spec() => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 2, Steps = 150, TargetBatch = 1000, LearningRate = 0.05, CheckpointEvery = 5, Seed = 11,
    };

    [Fact]
    public async Task Distiller_KilledMidRun_ResumesFromCheckpointAndEndsLikeAnUninterruptedRun()
    {
        await using var kernel = await _cluster.StartKernelAsync(ServiceProcess.FreePort());
        string interruptedId;
        await using (var first = await _cluster.StartDistillerAsync(kernel.Address))
        {
            using var channel = GrpcChannel.ForAddress(first.Address);
            var client = new DistillerClient(channel);
            interruptedId = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
            await ProcessCluster.WatchUntilAsync(client, interruptedId, e => e.Progress?.Step >= 23);
            first.Kill();
        }
        Assert.True(_cluster.Stored(interruptedId).Step < Spec().Steps, "the kill came before the end");

        await using var second = await _cluster.StartDistillerAsync(kernel.Address);
        using var secondChannel = GrpcChannel.ForAddress(second.Address);
        var secondClient = new DistillerClient(secondChannel);
        var resumedEvents = await ProcessCluster.WatchToEndAsync(secondClient, interruptedId);
        Assert.Equal(RunState.Succeeded, resumedEvents[^1].State.State);
        Assert.Contains(resumedEvents, e => e.State?.Message.StartsWith("resumed from step", StringComparison.Ordinal) == true);

        var uninterruptedId = (await secondClient.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
        Assert.Equal(RunState.Succeeded, (await ProcessCluster.WatchToEndAsync(secondClient, uninterruptedId))[^1].State.State);

        // Same seed, same batches, same arithmetic: the resumed run ends bit for bit where the other does.
        Assert.Equal(_cluster.Support(uninterruptedId, Spec().Steps), _cluster.Support(interruptedId, Spec().Steps));
    }

    [Fact]
    public async Task KernelService_StoppedAndRestartedMidRun_RunPausesThenContinues()
    {
        var port = ServiceProcess.FreePort();
        var kernel = await _cluster.StartKernelAsync(port);
        await using var distiller = await _cluster.StartDistillerAsync(kernel.Address);
        using var channel = GrpcChannel.ForAddress(distiller.Address);
        var client = new DistillerClient(channel);
        // Far more steps than run before the kill lands, however late the watcher sees step 10: the
        // run cannot end before it (a 150-step run once finished first on a loaded machine).
        var spec = Spec();
        spec.Steps = 1_000_000;
        var id = (await client.StartRunAsync(new StartRunRequest { Spec = spec })).Name;

        var events = await ProcessCluster.WatchUntilAsync(client, id, e => e.Progress?.Step >= 10);
        kernel.Kill();
        events.AddRange(await ProcessCluster.WatchUntilAsync(client, id, e => e.State?.State == RunState.Paused, events[^1].Sequence));
        Assert.Equal(RunState.Paused, (await client.GetRunAsync(new GetRunRequest { Name = id })).State);
        var pausedAt = events.Where(e => e.Progress is not null).Max(e => e.Progress.Step);

        await using var restarted = await _cluster.StartKernelAsync(port);
        events.AddRange(await ProcessCluster.WatchUntilAsync(client, id, e => e.Progress?.Step >= pausedAt + 10, events[^1].Sequence));
        Assert.Contains(events, e => e.State?.Message.Contains("reachable again") == true);
        Assert.Equal(RunState.Running, (await client.GetRunAsync(new GetRunRequest { Name = id })).State);

        await client.CancelRunAsync(new CancelRunRequest { Name = id });
        Assert.Equal(RunState.Cancelled, (await ProcessCluster.WatchToEndAsync(client, id, events[^1].Sequence))[^1].State.State);
        await kernel.DisposeAsync();
    }

    public void Dispose() => _cluster.Dispose();
}
