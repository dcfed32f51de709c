using Distill.Core.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Kernels;

/// <summary>
/// Kernel vector-Jacobian products against central finite differences in float64.
/// With h = 1e-5 the truncation error is O(h^2) ~ 1e-10 relative and round-off
/// ~ 1e-16 / h ~ 1e-11, so 1e-6 leaves a wide margin while catching any wrong term.
/// </summary>
public class KernelGradientTests : TensorLeakCheck
{
    private const double Step = 1e-5;

    public static TheoryData<KernelKind, int> Kernels() => new()
    {
        { KernelKind.Nngp, 1 }, { KernelKind.Ntk, 1 }, { KernelKind.Nngp, 3 }, { KernelKind.Ntk, 3 }, { KernelKind.Ntk, 0 },
    };

    [Theory]
    [MemberData(nameof(Kernels))]
    public void VectorJacobianProduct_BothOperands_MatchesFiniteDifferences(KernelKind kind, int depth)
    {
        var kernel = new FullyConnectedKernel(new KernelSpec(kind, depth));
        var generator = new Generator(3);
        var x1 = randn(3, 6, dtype: ScalarType.Float64, generator: generator);
        var x2 = randn(4, 6, dtype: ScalarType.Float64, generator: generator);
        var cotangent = randn(3, 4, dtype: ScalarType.Float64, generator: generator);

        var (g1, g2) = GramMatrix.VectorJacobianProduct(kernel, x1, x2, cotangent, blockRows: 2);

        TensorAssert.Close(FiniteDifference(x => kernel.Compute(x, x2).mul(cotangent).sum().item<double>(), x1), g1!, 1e-6, "d/dx1");
        TensorAssert.Close(FiniteDifference(x => kernel.Compute(x1, x).mul(cotangent).sum().item<double>(), x2), g2!, 1e-6, "d/dx2");
    }

    [Theory]
    [MemberData(nameof(Kernels))]
    public void VectorJacobianProduct_SymmetricWithZeroNormRow_IsFiniteAndMatchesFiniteDifferences(KernelKind kind, int depth)
    {
        var kernel = new FullyConnectedKernel(new KernelSpec(kind, depth));
        var generator = new Generator(5);
        var x = randn(4, 6, dtype: ScalarType.Float64, generator: generator);
        x[2] = zeros(6, dtype: ScalarType.Float64);
        var cotangent = randn(4, 4, dtype: ScalarType.Float64, generator: generator);

        var (gradient, _) = GramMatrix.VectorJacobianProduct(kernel, x, x, cotangent, symmetric: true);

        Assert.True(TensorAssert.ToArray(gradient!).All(double.IsFinite));
        TensorAssert.Close(FiniteDifference(v => kernel.ComputeSymmetric(v).mul(cotangent).sum().item<double>(), x), gradient!, 1e-6, "d/dx of K(x, x)");
    }

    [Fact]
    public void Compute_GradientAtCoincidingInputs_IsFinite()
    {
        // A target equal to a support image puts theta = 0 off the symmetric diagonal.
        var kernel = new FullyConnectedKernel(new KernelSpec(KernelKind.Ntk, 2));
        var generator = new Generator(9);
        var support = randn(3, 5, dtype: ScalarType.Float64, generator: generator);
        var targets = cat([support, zeros(1, 5, dtype: ScalarType.Float64)], 0);
        var cotangent = ones(4, 3, dtype: ScalarType.Float64);

        var (_, gradient) = GramMatrix.VectorJacobianProduct(kernel, targets, support, cotangent, wantGrad1: false);

        Assert.True(TensorAssert.ToArray(gradient!).All(double.IsFinite));
    }

    [Fact]
    public void Compute_BlockedGram_EqualsSingleBlock()
    {
        var kernel = new FullyConnectedKernel(new KernelSpec());
        var generator = new Generator(11);
        var x1 = randn(10, 4, dtype: ScalarType.Float64, generator: generator);
        var x2 = randn(3, 4, dtype: ScalarType.Float64, generator: generator);
        TensorAssert.Close(kernel.Compute(x1, x2), GramMatrix.Compute(kernel, x1, x2, blockRows: 3), 1e-15, "blocked");
    }

    [Fact]
    public void KernelSpec_NegativeDepth_NamesTheField()
    {
        var error = Assert.Throws<Distill.Core.Errors.InvalidFieldException>(() => new KernelSpec(Depth: -1).Validate());
        Assert.Contains("kernel.depth", error.Message);
        Assert.Contains("kernel.w_std", Assert.Throws<Distill.Core.Errors.InvalidFieldException>(() => new KernelSpec(WStd: double.NaN).Validate()).Message);
    }

    internal static Tensor FiniteDifference(Func<Tensor, double> f, Tensor x)
    {
        using var noGrad = no_grad();
        var flat = x.clone().contiguous();
        var values = TensorAssert.ToArray(flat);
        var gradient = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            double original = values[i];
            values[i] = original + Step;
            double plus = f(tensor(values, x.shape, dtype: ScalarType.Float64));
            values[i] = original - Step;
            double minus = f(tensor(values, x.shape, dtype: ScalarType.Float64));
            values[i] = original;
            gradient[i] = (plus - minus) / (2 * Step);
        }
        return tensor(gradient, x.shape, dtype: ScalarType.Float64);
    }
}
