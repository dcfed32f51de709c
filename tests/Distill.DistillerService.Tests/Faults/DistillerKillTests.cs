using System.Diagnostics;
using Distill.Protos.Distiller.V1;
using Grpc.Net.Client;
using Xunit.Abstractions;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests.Faults;

/// <summary>
/// The distiller killed (SIGKILL) again and again within one run, at points drawn from a
/// seeded generator: while it computes, while it writes a checkpoint (every step writes
/// one, so most of a session is spent near one) and while it records progress in its database.
/// </summary>
public sealed class DistillerKillTests(ITestOutputHelper output) : IDisposable
{
    private const int Kills = 20;
    private readonly ProcessCluster _cluster = new();

    // Long enough that twenty kills land before the end on a fast machine: at 90 steps/s a
    // 300-step run once finished between kills (fresh-clone CI, 2026-11-30).
    private static RunSpec Spec() => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 2, Steps = 1000, TargetBatch = 500, LearningRate = 0.05, CheckpointEvery = 1,
        EvaluateEvery = 0, Seed = 23,
    };

    [SkippableFact]
    public async Task Distiller_KilledTwentyTimesAtRandomPointsOfOneRun_AlwaysResumesAndEndsLikeAnUndisturbedRun()
    {
        SlowSuite.Require();
        var clock = Stopwatch.StartNew();
        var random = new Random(20261129);
        await using var kernel = await _cluster.StartKernelAsync(ServiceProcess.FreePort());
        string? id = null;
        long seen = 0, lastCheckpoint = 0;
        int resumes = 0;
        for (int kill = 0; kill < Kills; kill++)
        {
            await using var distiller = await _cluster.StartDistillerAsync(kernel.Address);
            using var channel = GrpcChannel.ForAddress(distiller.Address);
            var client = new DistillerClient(channel);
            id ??= (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;

            // Each session computes before it is killed: it starts, or resumes from at least the last checkpoint it reported.
            var events = await ProcessCluster.WatchUntilAsync(client, id, IsComputing, seen);
            Assert.True(IsComputing(events[^1]), $"session {kill} ended before it computed: {events[^1]}");
            // Checkpoints the killed process recorded after the last event this test saw.
            foreach (var e in events.Where(e => e.Checkpoint is not null)) lastCheckpoint = e.Checkpoint.Step;
            var begun = events[^1].State;
            if (begun.Message.StartsWith("resumed from step ", StringComparison.Ordinal))
            {
                resumes++;
                Assert.True(long.Parse(begun.Message["resumed from step ".Length..]) >= lastCheckpoint, $"{begun.Message}, after a checkpoint at {lastCheckpoint}");
            }
            seen = events[^1].Sequence;

            // Where to kill: a random moment, just as a checkpoint is recorded (the next one is being written), or as progress is stored.
            var point = random.Next(3);
            var after = point switch
            {
                0 => await ProcessCluster.WatchUntilAsync(client, id, _ => false, seen, TimeSpan.FromMilliseconds(random.Next(0, 400))),
                1 => await ProcessCluster.WatchUntilAsync(client, id, Nth(e => e.Checkpoint is not null, random.Next(1, 4)), seen),
                _ => await ProcessCluster.WatchUntilAsync(client, id, e => e.Progress?.Step % 10 == 9, seen),
            };
            distiller.Kill();
            Assert.DoesNotContain(after, e => e.State?.State is RunState.Succeeded or RunState.Failed);
            foreach (var e in after.Where(e => e.Checkpoint is not null)) lastCheckpoint = e.Checkpoint.Step;
            if (after.Count > 0) seen = after[^1].Sequence;
            output.WriteLine($"kill {kill + 1} at point {point}, {begun.Message}, last checkpoint seen {lastCheckpoint}, {clock.Elapsed.TotalSeconds:F0} s");
        }

        await using var last = await _cluster.StartDistillerAsync(kernel.Address);
        using var lastChannel = GrpcChannel.ForAddress(last.Address);
        var lastClient = new DistillerClient(lastChannel);
        var end = await ProcessCluster.WatchToEndAsync(lastClient, id!, seen);
        Assert.Equal(RunState.Succeeded, end[^1].State.State);
        resumes += end.Count(e => e.State?.Message.StartsWith("resumed from step ", StringComparison.Ordinal) == true);
        Assert.Equal(Kills, resumes);
        var killed = clock.Elapsed;

        var undisturbed = (await lastClient.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
        Assert.Equal(RunState.Succeeded, (await ProcessCluster.WatchToEndAsync(lastClient, undisturbed))[^1].State.State);
        Assert.Equal(_cluster.Support(undisturbed, Spec().Steps), _cluster.Support(id!, Spec().Steps));
        output.WriteLine($"{Kills} kills, resumed {resumes}/{Kills}, support identical; killed run {killed.TotalSeconds:F0} s, test {clock.Elapsed.TotalSeconds:F0} s");
    }

    private static bool IsComputing(RunEvent e) =>
        e.State?.Message is { } message && (message == "started" || message.StartsWith("resumed from step ", StringComparison.Ordinal));

    private static Func<RunEvent, bool> Nth(Func<RunEvent, bool> match, int n)
    {
        int count = 0;
        return e => match(e) && ++count == n;
    }

    public void Dispose() => _cluster.Dispose();
}
