using Distill.Core.Kernels;
using Distill.Core.Regression;
using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Regression;

public class KernelRidgeRegressionTests : TensorLeakCheck
{
    [Fact]
    public void Fit_SmallProblem_MatchesGaussianEliminationClosedForm()
    {
        var kernel = new FullyConnectedKernel(new KernelSpec());
        var generator = new Generator(21);
        var x = randn(5, 4, dtype: ScalarType.Float64, generator: generator);
        var y = randn(5, 2, dtype: ScalarType.Float64, generator: generator);
        var gram = kernel.ComputeSymmetric(x);
        const double reg = 1e-3;

        var (alpha, method) = KernelRidgeRegression.Fit(gram, y, reg);

        // Independent truth: plain double arithmetic, lambda = reg * tr(K) / n.
        var k = To2D(gram);
        double lambda = reg * Enumerable.Range(0, 5).Sum(i => k[i, i]) / 5;
        for (int i = 0; i < 5; i++) k[i, i] += lambda;
        var expected = GaussianSolve(k, To2D(y));
        Assert.Equal(SolveMethod.Cholesky, method);
        // A well-conditioned 5x5 solve: both sides agree to round-off.
        TensorAssert.Close(expected.Cast<double>().ToArray(), TensorAssert.ToArray(alpha), 1e-10, "alpha");
    }

    [Fact]
    public void Solve_IndefiniteMatrix_FallsBackToLuAndStillSolves()
    {
        // [[1, 2], [2, 1]] has eigenvalues 3 and -1: Cholesky must fail, jitter cannot fix
        // it, and the LU path must return the exact inverse applied to b.
        var matrix = tensor(new double[] { 1, 2, 2, 1 }, [2, 2], dtype: ScalarType.Float64);
        var rhs = tensor(new double[] { 1, 0 }, [2, 1], dtype: ScalarType.Float64);

        var (solution, method) = KernelRidgeRegression.Solve(matrix, 0, rhs);

        Assert.Equal(SolveMethod.LuFallback, method);
        TensorAssert.Close(new[] { -1.0 / 3, 2.0 / 3 }, TensorAssert.ToArray(solution), 1e-12, "LU solution");
    }

    [Fact]
    public void Solve_SingularGram_RecoversWithJitter()
    {
        // Two identical rows make K singular; with zero ridge the first factorisation
        // fails and a small jitter makes it positive definite.
        var x = tensor(new double[] { 1, 2, 1, 2 }, [2, 2], dtype: ScalarType.Float64);
        var gram = x.matmul(x.t());
        var (solution, method) = KernelRidgeRegression.Solve(gram, 0, ones(2, 1, dtype: ScalarType.Float64));
        Assert.Equal(SolveMethod.CholeskyWithJitter, method);
        Assert.True(TensorAssert.ToArray(solution).All(double.IsFinite));
    }

    private static double[,] To2D(Tensor t)
    {
        var values = TensorAssert.ToArray(t);
        int rows = (int)t.shape[0], cols = (int)t.shape[1];
        var result = new double[rows, cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                result[i, j] = values[i * cols + j];
        return result;
    }

    private static double[,] GaussianSolve(double[,] a, double[,] b)
    {
        int n = a.GetLength(0), m = b.GetLength(1);
        a = (double[,])a.Clone();
        b = (double[,])b.Clone();
        for (int col = 0; col < n; col++)
        {
            int pivot = Enumerable.Range(col, n - col).MaxBy(r => Math.Abs(a[r, col]));
            for (int j = 0; j < n; j++) (a[col, j], a[pivot, j]) = (a[pivot, j], a[col, j]);
            for (int j = 0; j < m; j++) (b[col, j], b[pivot, j]) = (b[pivot, j], b[col, j]);
            for (int r = 0; r < n; r++)
            {
                if (r == col) continue;
                double factor = a[r, col] / a[col, col];
                for (int j = 0; j < n; j++) a[r, j] -= factor * a[col, j];
                for (int j = 0; j < m; j++) b[r, j] -= factor * b[col, j];
            }
        }
        for (int r = 0; r < n; r++)
            for (int j = 0; j < m; j++)
                b[r, j] /= a[r, r];
        return b;
    }
}
