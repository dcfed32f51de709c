using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Preprocessing;
using Distill.Core.Runs;
using Distill.Core.Transfer;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Google.Rpc;
using Grpc.Core;
using TransferProtocol = Distill.Protos.Distiller.V1.TransferProtocol;

namespace Distill.DistillerService.Tests;

/// <summary>
/// EvaluateRun with transfer, over real gRPC: finite ConvNet-3 networks trained by the
/// distiller on a run's checkpoint, against the engine training the same networks here.
/// </summary>
public class TransferEvaluationTests
{
    [Fact]
    public async Task EvaluateRun_Transfer_TrainsTheEnginesNetworksOnTheCheckpoint_AndRefusesBadFieldsNamingThem()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(10) });
        Assert.Equal(RunState.Succeeded, (await cluster.WatchToEndAsync(run.Name))[^1].State.State);

        // Protocol and max_test unset: the kernel protocol on the whole test split, echoed. Small networks and few epochs: the tiny dataset's 8 x 8 images train in a second.
        var spec = new TransferSpec { Seeds = 2, Width = 16, Epochs = 300, LearningRate = 0.1, HeldOut = 50, EvalEvery = 20, Patience = 5 };
        var response = await cluster.Client.EvaluateRunAsync(new EvaluateRunRequest { Name = run.Name, Transfer = spec });

        var transfer = response.Transfer;
        Assert.Equal([0L, 1L], transfer.Seeds.Select(s => s.Seed));
        Assert.Equal(transfer.Seeds.Average(s => s.TestAccuracy), response.TestAccuracy, 12);
        Assert.Equal(TransferProtocol.Kernel, transfer.Spec.Protocol);
        Assert.Equal(50, transfer.Spec.HeldOut);
        Assert.Equal(100, transfer.TestCount);
        Assert.Equal(100, transfer.Spec.MaxTest);
        Assert.Null(response.Kernel);

        // The same networks trained here by the engine alone, on the checkpoint's support set.
        using var data = PreparedDataset.Prepare(DatasetLoader.Load(Path.Combine(cluster.DataRoot, TinyDataset.Name)), new PreprocessingSpec());
        using var state = KipState.Load(Path.Combine(cluster.RunFolder(run.Name), LocalRun.CheckpointFile));
        Assert.Equal(state.Step, response.Step);
        var (_, heldOutIndex) = ClassBalancedSplit.Draw(data.TrainLabels, data.ClassCount, 0, 50, seed: 0);
        using var sets = TransferSets.For(data, heldOutIndex, maxTest: null);
        var options = TransferOptions.Kernel() with { Width = 16, Epochs = 300, LearningRate = 0.1, EvalEvery = 20, Patience = 5 };
        var expected = new TransferTrainer(options, 1, 8, 8, data.ClassCount).Run([0, 1], state.SupportImages, state.SupportLabels, sets.HeldOut, sets.Test);
        Assert.Equal(expected.Seeds.Select(s => s.TestAccuracy), transfer.Seeds.Select(s => s.TestAccuracy));
        Assert.Equal(expected.Seeds.Select(s => s.BestEpoch), transfer.Seeds.Select(s => s.BestEpoch));
        Assert.True(response.TestAccuracy > 0.3, $"ten distilled images of ten well-separated classes must train a network beyond chance (0.1): {response.TestAccuracy}");

        // Bad settings are refused before any training, naming the field.
        foreach (var (bad, field) in new (EvaluateRunRequest, string)[]
        {
            (new() { Name = run.Name, Transfer = new TransferSpec { Width = TransferSpecs.MaxWidth + 1 } }, "transfer.width"),
            (new() { Name = run.Name, Transfer = new TransferSpec { Seeds = 0 } }, "transfer.seeds"),
            (new() { Name = run.Name, Transfer = new TransferSpec { LearningRate = double.NaN } }, "transfer.learning_rate"),
            (new() { Name = run.Name, Transfer = new TransferSpec { Protocol = (TransferProtocol)7 } }, "transfer.protocol"),
            (new() { Name = run.Name, Transfer = new TransferSpec(), Kernel = new Protos.Kernel.V1.KernelSpec() }, "kernel"),
        })
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.EvaluateRunAsync(bad).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Equal(field, Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
        }
    }
}
