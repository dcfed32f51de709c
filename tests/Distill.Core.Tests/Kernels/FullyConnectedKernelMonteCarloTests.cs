using Distill.Core.Kernels;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Kernels;

/// <summary>
/// The analytic kernels against their definition: empirical NNGP and NTK of random finite
/// fully connected ReLU networks of width 2048 in the NTK parameterisation, averaged over
/// independent networks. Finite-width fluctuations are O(1/sqrt(width)) per network, so
/// averaging 8 networks keeps the Monte Carlo error near 1%, well inside the 3% bound.
/// </summary>
public class FullyConnectedKernelMonteCarloTests : TensorLeakCheck
{
    private const int Width = 2048;
    private const int Networks = 8;
    private const double WStd = 1.4142135623730951;
    private const double BStd = 0.1;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Compute_MatchesWideNetworkAverage_WithinThreePercent(int depth)
    {
        var inputs = Inputs();
        var (nngp, ntk) = EmpiricalKernels(inputs, depth);

        var analyticNngp = new FullyConnectedKernel(new KernelSpec(KernelKind.Nngp, depth, WStd, BStd)).Compute(inputs, inputs);
        var analyticNtk = new FullyConnectedKernel(new KernelSpec(KernelKind.Ntk, depth, WStd, BStd)).Compute(inputs, inputs);

        var nngpError = MeanRelativeError(analyticNngp, nngp);
        var ntkError = MeanRelativeError(analyticNtk, ntk);
        Assert.True(nngpError < 0.03, $"NNGP depth {depth}: mean relative error {nngpError:P2}");
        Assert.True(ntkError < 0.03, $"NTK depth {depth}: mean relative error {ntkError:P2}");
    }

    [Fact]
    public void ComputeSymmetric_EqualsCompute_OnTheSameInputs()
    {
        var inputs = Inputs();
        var kernel = new FullyConnectedKernel(new KernelSpec(KernelKind.Ntk, 2));
        // Off the diagonal both paths run the same formula. On it the closed form q/2, 1/2
        // meets the general formula at theta ~ sqrt(2 eps) ~ 2e-8, where Sigma-dot is off by
        // theta / 2pi ~ 3e-9 per layer: 1e-8 relative.
        TensorAssert.Close(kernel.Compute(inputs, inputs), kernel.ComputeSymmetric(inputs), 1e-8, "symmetric vs general");
    }

    private static Tensor Inputs()
    {
        var generator = new Generator(7);
        var x = randn(5, 12, dtype: ScalarType.Float64, generator: generator);
        // Different norms, a near-copy and an anti-correlated pair exercise theta across [0, pi].
        using Scalar a = 0.9, b = 0.2, c = 1.5, d = 0.3;
        x[1] = x[0].mul(a).add(x[1].mul(b), One);
        x[2] = x[0].neg().mul(c);
        x[3] = x[3].mul(d);
        return x;
    }

    private static (Tensor Nngp, Tensor Ntk) EmpiricalKernels(Tensor inputs, int depth)
    {
        int n = (int)inputs.shape[0];
        var nngp = zeros(n, n, dtype: ScalarType.Float64);
        var ntk = zeros(n, n, dtype: ScalarType.Float64);
        var generator = new Generator(1234 + (ulong)depth);
        for (int net = 0; net < Networks; net++)
        {
            using var scope = NewDisposeScope();
            var widths = new List<long> { inputs.shape[1] };
            for (int l = 0; l < depth; l++) widths.Add(Width);
            widths.Add(1);
            var weights = new List<Tensor>();
            var biases = new List<Tensor>();
            for (int l = 0; l + 1 < widths.Count; l++)
            {
                weights.Add(randn(widths[l + 1], widths[l], dtype: ScalarType.Float64, generator: generator).requires_grad_(true));
                biases.Add(randn(widths[l + 1], dtype: ScalarType.Float64, generator: generator).requires_grad_(true));
            }

            var gradients = new List<Tensor>();
            for (int i = 0; i < n; i++)
            {
                var h = inputs[i];
                for (int l = 0; l < weights.Count; l++)
                {
                    if (l > 0) h = nn.functional.relu(h);
                    using Scalar wScale = WStd / Math.Sqrt(widths[l]), bStd = BStd;
                    h = weights[l].matmul(h).mul(wScale).add(biases[l].mul(bStd), One);
                }
                var parameters = weights.Concat(biases).ToList();
                var grads = autograd.grad([h.sum()], parameters);
                gradients.Add(cat(grads.Select(g => g.flatten()).ToList(), 0));
            }
            var jacobian = stack(gradients);
            ntk.add_(jacobian.matmul(jacobian.t()), One);

            // NNGP: covariance of the readout given the last hidden layer.
            using (no_grad())
            {
                var hidden = inputs.t();
                for (int l = 0; l < weights.Count - 1; l++)
                {
                    if (l > 0) hidden = nn.functional.relu(hidden);
                    using Scalar wScale = WStd / Math.Sqrt(widths[l]), bStd = BStd;
                    hidden = weights[l].matmul(hidden).mul(wScale).add(biases[l].mul(bStd).unsqueeze(1), One);
                }
                var last = nn.functional.relu(hidden);
                using Scalar wVariance = WStd * WStd / Width, bVariance = BStd * BStd;
                nngp.add_(last.t().matmul(last).mul(wVariance).add(bVariance, One), One);
            }
        }
        using Scalar count = Networks;
        return (nngp.div_(count), ntk.div_(count));
    }

    private static double MeanRelativeError(Tensor analytic, Tensor empirical)
    {
        var a = TensorAssert.ToArray(analytic);
        var e = TensorAssert.ToArray(empirical);
        return a.Zip(e, (x, y) => Math.Abs(x - y) / Math.Abs(x)).Average();
    }
}
