using Distill.Core.Errors;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Regression;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>
/// Label Solve (kernel-math.md section 4): for fixed support images, the labels that
/// minimise |K_ts (K_ss + lambda I)^-1 Y_s - Y_t|^2, namely
/// Y_s = (K_ss + lambda I) (K_st K_ts + rho I)^-1 K_st Y_t, with the evaluation ridge
/// lambda = reg tr(K_ss)/n_s and a tiny trace-scaled rho only for conditioning.
/// </summary>
public static class LabelSolver
{
    public const double DefaultSolveRegularization = 1e-10;

    public static (Tensor Labels, SolveMethod Method) Solve(IKernel kernel, Tensor supportImages, Tensor targetImages, Tensor targetLabels,
        double regularization, double solveRegularization = DefaultSolveRegularization, int blockRows = GramMatrix.DefaultBlockRows,
        Action<RowsDone>? progress = null, CancellationToken cancellation = default)
    {
        if (targetImages.shape[0] < supportImages.shape[0])
            throw new InvalidFieldException("support_per_class", $"label solve needs at least as many targets ({targetImages.shape[0]}) as support images ({supportImages.shape[0]})");
        using var scope = NewDisposeScope();
        var (normal, projected) = Accumulate(kernel, supportImages, targetImages, targetLabels, blockRows, progress, cancellation);
        var supportGram = GramMatrix.ComputeSymmetric(kernel, supportImages, progress: progress, cancellation: cancellation);
        var (labels, method) = Finish(supportGram, normal, projected, regularization, solveRegularization);
        return (labels.MoveToOuterDisposeScope(), method);
    }

    /// <summary>
    /// One shard's K_st K_ts (n_s x n_s) and K_st Y_t (n_s x C). Both are sums over targets,
    /// so shards of the target set add up to the whole. Each block of targets is reported to
    /// <paramref name="progress"/>, and is a point where cancellation takes effect.
    /// </summary>
    public static (Tensor Normal, Tensor Projected) Accumulate(IKernel kernel, Tensor supportImages, Tensor targetImages, Tensor targetLabels,
        int blockRows = GramMatrix.DefaultBlockRows, Action<RowsDone>? progress = null, CancellationToken cancellation = default)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ns = supportImages.shape[0];
        var normal = zeros(ns, ns, dtype: ScalarType.Float64, device: supportImages.device);
        var projected = zeros(ns, targetLabels.shape[1], dtype: ScalarType.Float64, device: supportImages.device);
        var n = targetImages.shape[0];
        for (long start = 0; start < n; start += blockRows)
        {
            cancellation.ThrowIfCancellationRequested();
            using var blockScope = NewDisposeScope();
            var length = Math.Min(blockRows, n - start);
            var kts = kernel.Compute(targetImages.narrow(0, start, length), supportImages);
            normal.add_(kts.t().matmul(kts), One);
            projected.add_(kts.t().matmul(targetLabels.narrow(0, start, length)), One);
            progress?.Invoke(new RowsDone(start + length, n));
        }
        return (normal.MoveToOuterDisposeScope(), projected.MoveToOuterDisposeScope());
    }

    /// <summary>Y_s = (K_ss + lambda I)(N + rho I)^-1 P from the summed normal matrix N and projection P.</summary>
    public static (Tensor Labels, SolveMethod Method) Finish(Tensor supportGram, Tensor normal, Tensor projected,
        double regularization, double solveRegularization = DefaultSolveRegularization)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var ns = supportGram.shape[0];
        var rho = solveRegularization * normal.trace().item<double>() / ns;
        var (solution, method) = KernelRidgeRegression.Solve(normal, rho, projected);
        using Scalar lambda = KernelRidgeRegression.Ridge(supportGram, regularization).item<double>();
        var labels = supportGram.add(eye(ns, dtype: ScalarType.Float64, device: supportGram.device).mul(lambda), One).matmul(solution);
        return (labels.MoveToOuterDisposeScope(), method);
    }
}
