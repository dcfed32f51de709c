using Distill.Core.Data;
using Distill.Core.FeaturePool;
using Distill.Core.Output;
using Distill.Core.Preprocessing;
using Distill.Core.Runs;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using Google.Rpc;
using Grpc.Core;
using RunPhase = Distill.Protos.Distiller.V1.RunPhase;

namespace Distill.DistillerService.Tests;

/// <summary>
/// Feature-pool runs through the distiller, over real kernel services: the pool sharded over
/// two services gives the run the engine computes alone in this process, also when one
/// service goes away mid-run (its shard is registered on the other) and when the run is
/// cancelled and resumed. Tiny 1 x 8 x 8 images keep every step a fraction of a second.
/// </summary>
public class FeaturePoolRunTests
{
    private static RunSpec Spec(int steps = 40)
    {
        var spec = LoopbackCluster.Spec(steps);
        spec.Kernel = new Protos.Kernel.V1.KernelSpec
        {
            Convolutional = new ConvolutionalSpec
            {
                Architecture = ConvArchitecture.ConvNet3, Kind = Protos.Kernel.V1.KernelKind.Nngp, ImageChannels = 1, ImageHeight = 8, ImageWidth = 8,
            },
        };
        spec.TargetBatch = 40;
        spec.CheckpointEvery = 5;
        spec.LearningRate = 0.01;
        spec.FeaturePool = new FeaturePoolSpec
        {
            PoolSize = 6, PoolSample = 3, Width = 16, NetworkSeed = 3, TargetSubset = 200, HeldOutNetworks = 2,
            ValidationPerClass = 3, ValidateEvery = 10, Mirror = true, Loss = Protos.Kernel.V1.PoolLoss.Platt, TestSubset = 50,
        };
        return spec;
    }

    [Fact]
    public async Task ShardedOverTwoServices_LosingOneAndResumed_EqualsTheEnginesRunInThisProcess()
    {
        await using var cluster = await LoopbackCluster.StartAsync(kernelServices: 2);
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = Spec() });
        Assert.Equal(6, run.Spec.FeaturePool.PoolSize);
        Assert.True(run.Spec.FeaturePool.HasTargetSubset && run.Spec.FeaturePool.HasValidateEvery);

        // Both services hold a shard of the pool.
        await cluster.WatchUntilAsync(run.Name, e => e.Progress is { Step: >= 2 });
        foreach (var service in new[] { 0, 1 })
            Assert.Equal(1, (await cluster.KernelClient(service).GetServerInfoAsync(new GetServerInfoRequest())).FeaturePoolCount);

        // Cancel and resume: the run continues from its checkpoint.
        await cluster.Client.CancelRunAsync(new CancelRunRequest { Name = run.Name });
        var cancelled = await cluster.WatchToEndAsync(run.Name);
        Assert.Equal(RunState.Cancelled, cancelled[^1].State.State);
        // The set-up reported each network as a service stored its features (three on each), before the first step.
        var setup = cancelled.Where(e => e.Phase is { Phase: RunPhase.FeaturePoolSetup }).ToList();
        Assert.Equal(Enumerable.Range(1, 6).Select(n => (0L, (long)n, 6L)), setup.Select(e => (e.Phase.Step, e.Phase.Done, e.Phase.Total)));
        Assert.True(cancelled.IndexOf(setup[^1]) < cancelled.FindIndex(e => e.Progress is not null));
        var stoppedAt = cancelled.Where(e => e.Progress is not null).Max(e => e.Progress.Step);
        Assert.True(stoppedAt < 40, "the run must still have steps to go when cancelled");
        await cluster.Client.ResumeRunAsync(new ResumeRunRequest { Name = run.Name });

        // One service goes away: its shard is registered on the other, and the run goes on.
        await cluster.WatchUntilAsync(run.Name, e => e.Progress is { } p && p.Step >= stoppedAt + 2, afterSequence: cancelled[^1].Sequence);
        await cluster.StopKernelAsync(1);
        var events = await cluster.WatchToEndAsync(run.Name, afterSequence: cancelled[^1].Sequence);
        Assert.True(RunState.Succeeded == events[^1].State.State, events[^1].State.Message);

        // The same run computed by the engine alone, here.
        using var data = PreparedDataset.Prepare(DatasetLoader.Load(Path.Combine(cluster.DataRoot, TinyDataset.Name)), new PreprocessingSpec());
        var options = RunSpecs.ToPoolOptions(run.Spec);
        var folder = Directory.CreateTempSubdirectory("pool-run-").FullName;
        try
        {
            var expected = FeaturePoolRun.Execute(data, options, folder, testSubset: 50, log: _ => { });
            Assert.Equal(50, expected.Final.TestCount);
            var (served, servedMeta) = SafetensorsFile.Read(Path.Combine(cluster.RunFolder(run.Name), LocalRun.DistilledFile));
            var (engine, engineMeta) = SafetensorsFile.Read(Path.Combine(folder, LocalRun.DistilledFile));
            Assert.Equal(engineMeta["distill.step"], servedMeta["distill.step"]);
            Assert.Equal(new long[] { 20, 1, 8, 8 }, served["images"].Shape);
            var (a, b) = (engine["images"].ToFloats(), served["images"].ToFloats());
            // Float32 convolutions may round differently when shards batch them differently (oneDNN's
            // AVX2 kernels on an AMD EPYC machine did), and 40 Adam steps carry that to about 3e-3.
            Assert.True(a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= 1e-2 * (1 + Math.Abs(p.First))),
                $"largest difference {a.Zip(b).Max(p => Math.Abs(p.First - p.Second))}");
            var final = (await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name })).TestAccuracy;
            Assert.Equal(expected.Final.ExactAccuracy, final, 6);
            Assert.True(expected.Final.ExactAccuracy > expected.Baseline.ExactAccuracy - 0.2, "the distilled set should not be far worse than its start");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task StartRun_BadFeaturePoolFields_AreInvalidArgumentNamingThem()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        foreach (var (change, field) in new (Action<RunSpec>, string)[]
        {
            (s => s.FeaturePool.PoolSample = 7, "spec.feature_pool.pool_sample"),
            (s => s.FeaturePool.Width = 0, "spec.feature_pool.width"),
            (s => s.FeaturePool.Loss = (Protos.Kernel.V1.PoolLoss)9, "spec.feature_pool.loss"),
            (s => s.Kernel = new Protos.Kernel.V1.KernelSpec(), "spec.kernel"),
            (s => s.Method = Method.LabelSolve, "spec.steps"),
        })
        {
            var spec = Spec();
            change(spec);
            var error = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.StartRunAsync(new StartRunRequest { Spec = spec }).ResponseAsync);
            Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{field}: {error.StatusCode} {error.Status.Detail}");
            Assert.Equal(field, Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
        }
    }
}
