using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Regression;
using Distill.Core.Tests;
using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using static Distill.KernelService.Tests.Messages;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.KernelService.Tests;

/// <summary>
/// Every computing method over real HTTP/2, against Distill.Core in this process. The
/// service runs the same engine code, so float64 results agree to round-off (1e-10).
/// </summary>
public class ComputationTests
{
    private static readonly IKernel Ntk = new FullyConnectedKernel(new Core.Kernels.KernelSpec());
    private static readonly Protos.Kernel.V1.KernelSpec NtkMessage = new() { FullyConnected = new Protos.Kernel.V1.FullyConnectedSpec { Kind = Protos.Kernel.V1.KernelKind.Ntk } };

    [Fact]
    public async Task ComputeGram_LargerThanOneMessage_StreamsBlocksThatAssembleToTheEngineResult()
    {
        // 64 KiB messages: a 300 x 100 float64 Gram (240 KB) needs several blocks.
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["Server:MaxMessageBytes"] = "65536" });
        var x1 = Random(300, 20, 1);
        var x2 = Random(100, 20, 2);

        var blocks = new List<GramBlock>();
        using var call = server.Client.ComputeGram(new ComputeGramRequest { Kernel = NtkMessage, X1 = Inline(x1), X2 = Inline(x2) });
        await foreach (var block in call.ResponseStream.ReadAllAsync()) blocks.Add(block);

        Assert.True(blocks.Count > 1, $"expected several blocks, got {blocks.Count}");
        Assert.All(blocks, b => Assert.True(b.CalculateSize() <= 65536));
        Assert.Equal(Enumerable.Range(0, blocks.Count).Select(i => blocks.Take(i).Sum(b => b.Block.Shape[0])), blocks.Select(b => b.RowStart));
        var assembled = cat(blocks.Select(b => b.Block.ToTorch()).ToList(), 0);
        TensorAssert.Close(Ntk.Compute(x1, x2), assembled, 1e-10, "gram");
    }

    [Fact]
    public async Task ComputeGram_DatasetRowsAndFloat32_MatchesInlineRows()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = Random(40, 12, 3);
        var info = await UploadAsync(server.Client, train, Random(10, 12, 4), classes: 4);
        var support = Random(5, 12, 5);

        var blocks = new List<GramBlock>();
        using var call = server.Client.ComputeGram(new ComputeGramRequest { Kernel = NtkMessage, X1 = Rows(info.Name, 10, 20), X2 = Inline(support), Dtype = DataType.Float32 });
        await foreach (var block in call.ResponseStream.ReadAllAsync()) blocks.Add(block);

        Assert.Equal(DataType.Float32, blocks[0].Block.Dtype);
        // float32 output: 2^-24 relative rounding.
        TensorAssert.Close(Ntk.Compute(train.narrow(0, 10, 20), support), blocks[0].Block.ToTorch(), 1e-6, "gram from rows");
    }

    [Fact]
    public async Task VectorJacobianProduct_BothOperands_AgreesWithFiniteDifferencesOfServedGram()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var x1 = Random(3, 4, 6);
        var x2 = Random(2, 4, 7);
        var cotangent = Random(3, 2, 8);

        var response = await server.Client.VectorJacobianProductAsync(new VectorJacobianProductRequest
        {
            Kernel = NtkMessage, X1 = Inline(x1), X2 = Inline(x2), Cotangent = cotangent.ToMessage(), WantX1 = true, WantX2 = true,
        });

        // Central differences of sum(C * K) using only ComputeGram over the wire;
        // h = 1e-5 keeps truncation and round-off near 1e-10 relative.
        async Task<double> Objective(TorchSharp.torch.Tensor a, TorchSharp.torch.Tensor b)
        {
            using var call = server.Client.ComputeGram(new ComputeGramRequest { Kernel = NtkMessage, X1 = Inline(a), X2 = Inline(b) });
            var blocks = new List<TorchSharp.torch.Tensor>();
            await foreach (var block in call.ResponseStream.ReadAllAsync()) blocks.Add(block.Block.ToTorch());
            return cat(blocks, 0).mul(cotangent).sum().item<double>();
        }
        async Task<double[]> Differences(TorchSharp.torch.Tensor x, Func<TorchSharp.torch.Tensor, Task<double>> f)
        {
            const double h = 1e-5;
            var values = TensorAssert.ToArray(x);
            var gradient = new double[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                var plus = (double[])values.Clone(); plus[i] += h;
                var minus = (double[])values.Clone(); minus[i] -= h;
                gradient[i] = (await f(tensor(plus, x.shape, dtype: ScalarType.Float64)) - await f(tensor(minus, x.shape, dtype: ScalarType.Float64))) / (2 * h);
            }
            return gradient;
        }

        TensorAssert.Close(await Differences(x1, a => Objective(a, x2)), TensorAssert.ToArray(response.GradX1.ToTorch()), 1e-6, "grad x1");
        TensorAssert.Close(await Differences(x2, b => Objective(x1, b)), TensorAssert.ToArray(response.GradX2.ToTorch()), 1e-6, "grad x2");
    }

    [Fact]
    public async Task VectorJacobianProduct_Symmetric_MatchesEngine()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var x = Random(6, 5, 9);
        var cotangent = Random(6, 6, 10);
        var response = await server.Client.VectorJacobianProductAsync(new VectorJacobianProductRequest { Kernel = NtkMessage, X1 = Inline(x), Cotangent = cotangent.ToMessage(), Symmetric = true });
        var (expected, _) = GramMatrix.VectorJacobianProduct(Ntk, x, x, cotangent, symmetric: true);
        TensorAssert.Close(expected!, response.GradX1.ToTorch(), 1e-10, "symmetric vjp");
    }

    [Fact]
    public async Task SolveKrr_WithQuery_MatchesClosedFormOfTheEngine()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var support = Random(8, 6, 11);
        var labels = Labels(8, 3);
        var query = Random(5, 6, 12);

        var response = await server.Client.SolveKrrAsync(new SolveKrrRequest
        {
            Kernel = NtkMessage, Support = Inline(support), SupportLabels = labels.ToMessage(), Regularization = 1e-3, Query = Inline(query),
        });

        var gram = Ntk.ComputeSymmetric(support);
        var ridge = 1e-3 * gram.trace().item<double>() / 8;
        using Scalar ridgeScalar = ridge;
        var alpha = linalg.solve(gram.add(eye(8, dtype: ScalarType.Float64).mul(ridgeScalar), One), labels);
        Assert.Equal(ridge, response.Ridge, 12);
        Assert.Equal(Protos.Kernel.V1.SolveMethod.Cholesky, response.SolveMethod);
        TensorAssert.Close(alpha, response.Alpha.ToTorch(), 1e-10, "alpha");
        TensorAssert.Close(Ntk.Compute(query, support).matmul(alpha), response.Predictions.ToTorch(), 1e-10, "predictions");
    }

    [Fact]
    public async Task KipShardStep_TwoShards_SumToTheEngineStepOnTheWholeBatch()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = Random(60, 10, 13);
        var info = await UploadAsync(server.Client, train, Random(20, 10, 14), classes: 3);
        var support = Random(6, 10, 15);
        var labels = Labels(6, 3);
        KipShardStepRequest Shard(long start, long count) => new()
        {
            Kernel = NtkMessage, Support = support.ToMessage(), SupportLabels = labels.ToMessage(), TotalTargets = 60,
            Targets = Rows(info.Name, start, count).Rows, Regularization = 1e-6, WantLabelGradient = true,
        };

        var first = await server.Client.KipShardStepAsync(Shard(0, 25));
        var second = await server.Client.KipShardStepAsync(Shard(25, 35));

        var objective = new KipObjective(Ntk, 1e-6);
        using var expected = objective.ShardStep(support, labels, train, Labels(60, 3), 60, wantLabelGradient: true);
        Assert.Equal(expected.Loss, first.Loss + second.Loss, 12);
        TensorAssert.Close(expected.SupportGradient, first.SupportGradient.ToTorch().add(second.SupportGradient.ToTorch(), One), 1e-10, "support gradient");
        TensorAssert.Close(expected.LabelGradient!, first.LabelGradient.ToTorch().add(second.LabelGradient.ToTorch(), One), 1e-10, "label gradient");
        TensorAssert.Close(expected.Reduction, first.Reduction.ToTorch().add(second.Reduction.ToTorch(), One), 1e-10, "reduction");
        Assert.Equal(25, first.TargetCount);
    }

    [Fact]
    public async Task EvaluateKrr_TestSplit_MatchesEngineEvaluation()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var test = Random(30, 8, 17);
        var info = await UploadAsync(server.Client, Random(40, 8, 16), test, classes: 3);
        var support = Random(6, 8, 18);
        var labels = Labels(6, 3);

        var response = await server.Client.EvaluateKrrAsync(new EvaluateKrrRequest
        {
            Kernel = NtkMessage, Support = support.ToMessage(), SupportLabels = labels.ToMessage(), Regularization = 1e-6,
            Dataset = info.Name, Split = Split.Test,
        });

        var expected = KrrEvaluator.Evaluate(Ntk, support, labels, test, Enumerable.Range(0, 30).Select(i => i % 3).ToArray(), Labels(30, 3), 1e-6);
        Assert.Equal(expected.Accuracy, response.Accuracy);
        Assert.Equal(expected.Mse, response.Mse, 12);
        Assert.Equal(30, response.Count);
    }

    [Fact]
    public async Task EvaluateKrr_NamedRows_MatchesEngineEvaluationOnThoseRows_AndRefusesAnOutOfRangeRow()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var test = Random(30, 8, 17);
        var info = await UploadAsync(server.Client, Random(40, 8, 16), test, classes: 3);
        var support = Random(6, 8, 18);
        var labels = Labels(6, 3);
        long[] rows = [2, 5, 11, 12, 29];
        EvaluateKrrRequest Request(params long[] indices) => new()
        {
            Kernel = NtkMessage, Support = support.ToMessage(), SupportLabels = labels.ToMessage(), Regularization = 1e-6,
            Dataset = info.Name, Split = Split.Test, Indices = { indices },
        };

        var response = await server.Client.EvaluateKrrAsync(Request(rows));

        using var index = TorchSharp.torch.tensor(rows);
        var expected = KrrEvaluator.Evaluate(Ntk, support, labels, test.index_select(0, index), rows.Select(i => (int)(i % 3)).ToArray(),
            Labels(30, 3).index_select(0, index), 1e-6);
        Assert.Equal(5, response.Count);
        Assert.Equal(expected.Accuracy, response.Accuracy);
        Assert.Equal(expected.Mse, response.Mse, 12);
        var error = await FailsAsync(() => server.Client.EvaluateKrrAsync(Request(1, 30)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("indices[1]", Assert.Single(error.GetRpcStatus()!.GetDetail<Google.Rpc.BadRequest>()!.FieldViolations).Field);
    }

    /// <summary>Support Gram progress: pairs done rising to all <paramref name="pairs"/>, with no rows in the same messages.</summary>
    private static void AssertPairsRiseTo(long pairs, IEnumerable<(long Done, long Total, long RowsDone, long TotalRows)> updates)
    {
        var list = updates.ToList();
        Assert.NotEmpty(list);
        Assert.All(list, u => Assert.Equal((pairs, 0L, 0L), (u.Total, u.RowsDone, u.TotalRows)));
        Assert.Equal(pairs, list[^1].Done);
        Assert.True(list.Select(u => u.Done).SequenceEqual(list.Select(u => u.Done).Order().Distinct()), "pairs done rise");
    }

    [Fact]
    public async Task StreamEvaluateKrr_ReportsEachBlock_ThenWhatEvaluateKrrAnswers_AndNamesItsOwnFields()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var info = await UploadAsync(server.Client, Random(40, 8, 16), Random(30, 8, 17), classes: 3);
        var evaluation = new EvaluateKrrRequest
        {
            Kernel = NtkMessage, Support = Random(6, 8, 18).ToMessage(), SupportLabels = Labels(6, 3).ToMessage(), Regularization = 1e-6,
            Dataset = info.Name, Split = Split.Test,
        };

        using var call = server.Client.StreamEvaluateKrr(new StreamEvaluateKrrRequest { Evaluation = evaluation, BlockRows = 8 });
        var updates = await call.ResponseStream.ReadAllAsync().ToListAsync();

        // First the support's Gram matrix, its 6 x 7 / 2 image pairs, then the test rows block by block.
        var gram = updates.TakeWhile(u => u.Progress?.SupportPairs > 0).Select(u => u.Progress).ToList();
        AssertPairsRiseTo(21, gram.Select(p => (p.SupportPairsDone, p.SupportPairs, p.RowsDone, p.TotalRows)));
        Assert.Equal([(8L, 30L), (16L, 30L), (24L, 30L), (30L, 30L)], updates.Skip(gram.Count).SkipLast(1).Select(u => (u.Progress.RowsDone, u.Progress.TotalRows)));
        var result = updates[^1].Result;
        var whole = await server.Client.EvaluateKrrAsync(evaluation);
        Assert.Equal(whole.Accuracy, result.Accuracy);
        Assert.Equal(whole.Mse, result.Mse, 12);
        Assert.Equal(30, result.Count);

        await RefusedNamingAsync(() => server.Client.StreamEvaluateKrr(new StreamEvaluateKrrRequest { BlockRows = 8 }), "evaluation");
        await RefusedNamingAsync(() => server.Client.StreamEvaluateKrr(new StreamEvaluateKrrRequest { Evaluation = evaluation, BlockRows = -1 }), "block_rows");
    }

    [Fact]
    public async Task StreamLabelSolveShard_ReportsEachBlock_ThenTheShardsSums_AndNamesItsOwnFields()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = Random(40, 8, 16);
        var info = await UploadAsync(server.Client, train, Random(10, 8, 17), classes: 3);
        var support = Random(6, 8, 18);
        var shard = new LabelSolveShardRequest { Kernel = NtkMessage, Support = support.ToMessage(), Targets = Rows(info.Name, 5, 30).Rows };

        using var call = server.Client.StreamLabelSolveShard(new StreamLabelSolveShardRequest { Shard = shard, BlockRows = 8 });
        var updates = await call.ResponseStream.ReadAllAsync().ToListAsync();

        // The target rows block by block, then the support's Gram matrix, its 6 x 7 / 2 image pairs.
        Assert.Equal([(8L, 30L), (16L, 30L), (24L, 30L), (30L, 30L)], updates.Take(4).Select(u => (u.Progress.RowsDone, u.Progress.TotalRows)));
        AssertPairsRiseTo(21, updates.Skip(4).SkipLast(1).Select(u => (u.Progress.SupportPairsDone, u.Progress.SupportPairs, u.Progress.RowsDone, u.Progress.TotalRows)));
        // The closed form over the shard's 30 targets at once: K_st K_ts, K_st Y_t and K_ss.
        var kts = Ntk.Compute(train.narrow(0, 5, 30), support);
        var result = updates[^1].Result;
        TensorAssert.Close(kts.t().matmul(kts), result.Normal.ToTorch(), 1e-10, "normal");
        TensorAssert.Close(kts.t().matmul(Labels(40, 3).narrow(0, 5, 30)), result.Projected.ToTorch(), 1e-10, "projected");
        TensorAssert.Close(Ntk.ComputeSymmetric(support), result.SupportGram.ToTorch(), 1e-10, "support gram");

        // A shard that omits K_ss reports the target rows only and returns the same sums.
        shard.OmitSupportGram = true;
        using var omitting = server.Client.StreamLabelSolveShard(new StreamLabelSolveShardRequest { Shard = shard, BlockRows = 8 });
        var omitted = await omitting.ResponseStream.ReadAllAsync().ToListAsync();
        Assert.Equal([(8L, 30L), (16L, 30L), (24L, 30L), (30L, 30L)], omitted.SkipLast(1).Select(u => (u.Progress.RowsDone, u.Progress.TotalRows)));
        Assert.Null(omitted[^1].Result.SupportGram);
        Assert.Equal(result.Normal, omitted[^1].Result.Normal);
        Assert.Equal(result.Projected, omitted[^1].Result.Projected);

        await RefusedNamingAsync(() => server.Client.StreamLabelSolveShard(new StreamLabelSolveShardRequest { BlockRows = 8 }), "shard");
        await RefusedNamingAsync(() => server.Client.StreamLabelSolveShard(new StreamLabelSolveShardRequest { Shard = shard, BlockRows = -1 }), "block_rows");
    }

    /// <summary>The stream ends INVALID_ARGUMENT with one field violation, naming <paramref name="field"/>.</summary>
    private static async Task RefusedNamingAsync<T>(Func<AsyncServerStreamingCall<T>> start, string field)
    {
        var error = await FailsAsync(async () =>
        {
            using var refused = start();
            await refused.ResponseStream.ReadAllAsync().ToListAsync();
        });
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal(field, Assert.Single(error.GetRpcStatus()!.GetDetail<Google.Rpc.BadRequest>()!.FieldViolations).Field);
    }
}
