using Distill.Core.Distillation;
using Distill.Core.Kernels;
using Distill.Core.Tests.Kernels;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Distillation;

public class KipObjectiveTests : TensorLeakCheck
{
    // A larger ridge than KIP's 1e-6 keeps the solve well conditioned, so that central
    // differences are accurate to ~1e-8 and a 1e-5 tolerance still catches a wrong term.
    private const double Regularization = 1e-2;

    [Theory]
    [InlineData(KernelKind.Ntk, 1)]
    [InlineData(KernelKind.Nngp, 2)]
    public void ShardStep_Gradients_MatchFiniteDifferencesOfTheLoss(KernelKind kind, int depth)
    {
        var kernel = new FullyConnectedKernel(new KernelSpec(kind, depth));
        var (xs, ys, xt, yt) = Problem(31);
        var objective = new KipObjective(kernel, Regularization);

        using var result = objective.ShardStep(xs, ys, xt, yt, xt.shape[0], wantLabelGradient: true);

        Assert.Equal(ReferenceLoss(kernel, xs, ys, xt, yt), result.Loss, 12);
        TensorAssert.Close(KernelGradientTests.FiniteDifference(x => ReferenceLoss(kernel, x, ys, xt, yt), xs), result.SupportGradient, 1e-5, "dL/dXs");
        TensorAssert.Close(KernelGradientTests.FiniteDifference(y => ReferenceLoss(kernel, xs, y, xt, yt), ys), result.LabelGradient!, 1e-5, "dL/dYs");
    }

    [Fact]
    public void ShardStep_SumOverShards_EqualsWholeBatch()
    {
        var kernel = new FullyConnectedKernel(new KernelSpec());
        var (xs, ys, xt, yt) = Problem(41);
        var objective = new KipObjective(kernel, 1e-6);
        long n = xt.shape[0];

        using var whole = objective.ShardStep(xs, ys, xt, yt, n, true);
        using var first = objective.ShardStep(xs, ys, xt.narrow(0, 0, 7), yt.narrow(0, 0, 7), n, true);
        using var second = objective.ShardStep(xs, ys, xt.narrow(0, 7, n - 7), yt.narrow(0, 7, n - 7), n, true);

        // Only the order of float64 additions differs.
        Assert.Equal(whole.Loss, first.Loss + second.Loss, 12);
        TensorAssert.Close(whole.SupportGradient, first.SupportGradient.add(second.SupportGradient, One), 1e-9, "support gradient");
        TensorAssert.Close(whole.LabelGradient!, first.LabelGradient!.add(second.LabelGradient!, One), 1e-9, "label gradient");
        TensorAssert.Close(whole.Reduction, first.Reduction.add(second.Reduction, One), 1e-9, "reduction");
    }

    [Fact]
    public void LabelSolver_Labels_MakeTheLabelGradientVanish()
    {
        var kernel = new FullyConnectedKernel(new KernelSpec());
        var (xs, ys, xt, yt) = Problem(51);
        var objective = new KipObjective(kernel, 1e-6);

        using var before = objective.ShardStep(xs, ys, xt, yt, xt.shape[0], true);
        var (solved, _) = LabelSolver.Solve(kernel, xs, xt, yt, 1e-6, blockRows: 5);
        using var after = objective.ShardStep(xs, solved, xt, yt, xt.shape[0], true);

        var ratio = after.LabelGradient!.norm().item<double>() / before.LabelGradient!.norm().item<double>();
        Assert.True(ratio < 1e-6, $"label gradient shrank only by {ratio:E2}");
        Assert.True(after.Loss < before.Loss, "solved labels must not raise the loss");
    }

    /// <summary>The loss written directly: separate solve path, no shards, no cotangents.</summary>
    private static double ReferenceLoss(IKernel kernel, Tensor xs, Tensor ys, Tensor xt, Tensor yt)
    {
        using var noGrad = no_grad();
        var kss = kernel.ComputeSymmetric(xs);
        var n = xs.shape[0];
        using Scalar lambda = Regularization * kss.trace().item<double>() / n;
        var alpha = linalg.solve(kss.add(eye(n, dtype: ScalarType.Float64).mul(lambda), One), ys);
        var residual = kernel.Compute(xt, xs).matmul(alpha).sub(yt);
        return 0.5 * residual.square().mean().item<double>();
    }

    private static (Tensor Xs, Tensor Ys, Tensor Xt, Tensor Yt) Problem(ulong seed)
    {
        var generator = new Generator(seed);
        var xs = randn(4, 5, dtype: ScalarType.Float64, generator: generator);
        var xt = randn(15, 5, dtype: ScalarType.Float64, generator: generator);
        var ys = CenteredOneHot.Encode(new[] { 0, 1, 2, 0 }, 3);
        var yt = CenteredOneHot.Encode(Enumerable.Range(0, 15).Select(i => i % 3).ToArray(), 3);
        return (xs, ys, xt, yt);
    }
}
