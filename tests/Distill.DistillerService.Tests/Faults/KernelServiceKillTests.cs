using System.Diagnostics;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests.Faults;

/// <summary>Three kernel services, one of them killed (SIGKILL) every 30 steps and started again, all through one run.</summary>
public sealed class KernelServiceKillTests(ITestOutputHelper output) : IDisposable
{
    private const int Services = 3;
    private const int KillEvery = 30, Steps = 300;
    private readonly ProcessCluster _cluster = new();

    private static RunSpec Spec() => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 2, Steps = Steps, TargetBatch = 1000, LearningRate = 0.05, CheckpointEvery = 10, Seed = 29,
    };

    [SkippableFact]
    public async Task KernelServices_KilledAtRandomThroughARun_RunEndsLikeAnUndisturbedRun()
    {
        SlowSuite.Require();
        var clock = Stopwatch.StartNew();
        var random = new Random(3);
        var ports = Enumerable.Range(0, Services).Select(_ => ServiceProcess.FreePort()).ToArray();
        var kernels = new ServiceProcess[Services];
        try
        {
            for (int i = 0; i < Services; i++) kernels[i] = await _cluster.StartKernelAsync(ports[i]);
            await using var distiller = await _cluster.StartDistillerAsync(kernels.Select(k => k.Address).ToArray());
            using var channel = GrpcChannel.ForAddress(distiller.Address);
            var client = new DistillerClient(channel);
            var id = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
            // Every kill costs the run retries and a dataset upload: give it time on a loaded machine.
            using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            using var watch = client.WatchRun(new WatchRunRequest { Name = id }, cancellationToken: limit.Token);
            var events = new List<RunEvent>();
            int kills = 0;
            long nextKill = KillEvery;
            // A kill each time the run passes another KillEvery steps (victim drawn, seeded); the service is started
            // again at once on its port. Kills follow the run's own steps, so each lands mid-run however fast the machine.
            await foreach (var e in watch.ResponseStream.ReadAllAsync(limit.Token))
            {
                events.Add(e);
                if (e.Progress is not { } progress || progress.Step < nextKill || progress.Step >= Steps) continue;
                var victim = random.Next(Services);
                kernels[victim].Kill();
                kills++;
                await kernels[victim].DisposeAsync();
                kernels[victim] = await _cluster.StartKernelAsync(ports[victim]);
                nextKill = progress.Step + KillEvery;
            }
            var disturbed = clock.Elapsed;
            Assert.Equal(RunState.Succeeded, events[^1].State.State);
            Assert.True(kills >= 5, $"only {kills} kills before the run ended");

            var undisturbed = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
            Assert.Equal(RunState.Succeeded, (await ProcessCluster.WatchToEndAsync(client, undisturbed))[^1].State.State);
            Assert.Equal(_cluster.Support(undisturbed, Steps), _cluster.Support(id, Steps));
            output.WriteLine($"{Services} kernel services, {kills} kills, {events.Count(e => e.State?.State == RunState.Paused)} pauses, " +
                $"support identical; disturbed run {disturbed.TotalSeconds:F0} s, test {clock.Elapsed.TotalSeconds:F0} s");
        }
        finally
        {
            foreach (var kernel in kernels) if (kernel is not null) await kernel.DisposeAsync();
        }
    }

    public void Dispose() => _cluster.Dispose();
}
