using Distill.Core.Kernels;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Regression;

/// <summary>How a ridge system was solved, so callers can report a degraded solve.</summary>
public enum SolveMethod
{
    Cholesky,
    CholeskyWithJitter,
    LuFallback,
}

/// <summary>
/// Kernel ridge regression with the trace-scaled ridge of KIP (kernel-math.md section 3):
/// alpha = (K + lambda I)^-1 Y with lambda = reg * tr(K) / n, solved by Cholesky in float64.
/// </summary>
public static class KernelRidgeRegression
{
    public const double DefaultRegularization = 1e-6;
    private const int JitterRetries = 4;

    /// <summary>lambda = |reg| * tr(K) / n, as a 0-d tensor that keeps K's autograd graph.</summary>
    public static Tensor Ridge(Tensor gram, double regularization)
    {
        using Scalar factor = Math.Abs(regularization);  // held for the call (see HeldScalars)
        return gram.diagonal().mean().mul(factor);
    }

    /// <summary>
    /// The Cholesky factor of K + lambda I (symmetrised). When the factorisation fails the
    /// ridge is raised tenfold up to four times; if it still fails, <c>null</c> is returned
    /// with <see cref="SolveMethod.LuFallback"/> and callers use <see cref="Solve"/>'s LU path.
    /// </summary>
    public static (Tensor? Factor, SolveMethod Method) Factor(Tensor gram, double ridge)
    {
        using var scope = NewDisposeScope();
        var n = gram.shape[0];
        using Scalar two = 2;
        var symmetric = gram.add(gram.t(), One).div_(two);
        var identity = eye(n, dtype: gram.dtype, device: gram.device);
        var extra = ridge;
        for (int attempt = 0; attempt <= JitterRetries; attempt++)
        {
            using Scalar jitter = extra;
            var (factor, info) = linalg.cholesky_ex(symmetric.add(identity.mul(jitter), One));
            if (info.max().item<int>() == 0)
                return (factor.MoveToOuterDisposeScope(), attempt == 0 ? SolveMethod.Cholesky : SolveMethod.CholeskyWithJitter);
            extra = Math.Max(extra * 10, 1e-12 * Math.Max(1e-300, symmetric.diagonal().abs().mean().item<double>()));
        }
        return (null, SolveMethod.LuFallback);
    }

    /// <summary>(K + lambda I)^-1 B without forming an inverse.</summary>
    public static (Tensor Solution, SolveMethod Method) Solve(Tensor gram, double ridge, Tensor rhs)
    {
        using var scope = NewDisposeScope();
        var (factor, method) = Factor(gram, ridge);
        Tensor solution = factor is not null
            ? cholesky_solve(rhs, factor)
            : LuSolve(gram, ridge, rhs);
        return (solution.MoveToOuterDisposeScope(), method);
    }

    private static Tensor LuSolve(Tensor gram, double ridge, Tensor rhs)
    {
        using Scalar lambda = ridge;
        return linalg.solve(gram.add(eye(gram.shape[0], dtype: gram.dtype, device: gram.device).mul(lambda), One), rhs);
    }

    /// <summary>Fits alpha for support Gram K_ss and labels Y_s with the trace-scaled ridge.</summary>
    public static (Tensor Alpha, SolveMethod Method) Fit(Tensor supportGram, Tensor supportLabels, double regularization)
    {
        using var noGrad = no_grad();
        var ridge = Ridge(supportGram, regularization).item<double>();
        return Solve(supportGram, ridge, supportLabels);
    }

    /// <summary>
    /// K_ss, the ridge, alpha and, when a query is given, K_qs alpha: a whole KRR solve as the
    /// kernel service's SolveKrr answers it.
    /// </summary>
    public static KrrFit FitAndPredict(IKernel kernel, Tensor support, Tensor supportLabels, double regularization, Tensor? query = null)
    {
        using var scope = NewDisposeScope();
        var gram = kernel.ComputeSymmetric(support);
        var ridge = Ridge(gram, regularization).item<double>();
        var (alpha, method) = Solve(gram, ridge, supportLabels);
        var predictions = query is null ? null : GramMatrix.Compute(kernel, query, support).matmul(alpha).MoveToOuterDisposeScope();
        return new KrrFit(alpha.MoveToOuterDisposeScope(), ridge, method, predictions);
    }
}

/// <summary>A fitted kernel ridge regression: coefficients, the ridge used, how it was solved, and predictions when asked for.</summary>
public sealed record KrrFit(Tensor Alpha, double Ridge, SolveMethod Method, Tensor? Predictions);
