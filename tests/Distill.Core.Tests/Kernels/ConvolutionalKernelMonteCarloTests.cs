using Distill.Core.Kernels;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Kernels;

/// <summary>
/// The exact convolutional kernels against their definition: the empirical NNGP (readout
/// covariance given the last hidden layer) and NTK (inner products of the scalar output's
/// parameter gradients) of random finite networks of the same architecture, in the NTK
/// parameterisation (weights and biases N(0, 1), scaled by W_std / sqrt(fan-in) and b_std),
/// averaged over independent networks. See the tolerance note on each test.
/// </summary>
public class ConvolutionalKernelMonteCarloTests : TensorLeakCheck
{
    private const double WStd = 1.4142135623730951;
    private const double BStd = 0.1;

    // The finite-width fluctuation of an empirical kernel is mostly a common scale factor of
    // all entries, with a per-network relative standard deviation measured at sqrt(~9 / channels):
    // ~20% at 256 channels for these 3-4 conv-layer nets, less with more pixels pooled into the
    // readout. Averaging N independent networks divides it by sqrt(N): ~4% for ConvNet3 and
    // Myrtle-5 at 256 x 24 and ConvNet at 256 x 32, so 5% is only about 1.3 standard
    // deviations of a fresh draw; these draws are seeded and deterministic, and measured
    // (NNGP / NTK mean relative error): ConvNet3 3.9% / 2.2%, ConvNet 0.2% / 1.5%, Myrtle-5
    // 1.8% / 2.5%. The cost (2-15 s per case on one core, dominated by ConvNet's two
    // full-resolution 256-channel convolutions and the NTK's parameter gradients) bounds the
    // sizes; a 3-sigma margin would need about 8x the networks. ConvNet at 8 px is also
    // checked exactly against Myrtle-5 (the same network at that size) in ConvolutionalKernelTests.
    [Theory]
    [InlineData(KernelArchitecture.ConvNet3, KernelReadout.Flatten, 8, 256, 24, 1UL)]
    [InlineData(KernelArchitecture.ConvNet, KernelReadout.Flatten, 8, 256, 32, 2UL)]
    [InlineData(KernelArchitecture.Myrtle5, KernelReadout.GlobalAveragePool, 4, 256, 24, 3UL)]
    public void Compute_MatchesWideNetworkAverage_WithinFivePercent(KernelArchitecture architecture, KernelReadout readout, int side, int channels, int networks, ulong seed)
    {
        const int imageChannels = 2;
        var inputs = Inputs(imageChannels, side);
        var spec = new KernelSpec(KernelKind.Nngp, WStd: WStd, BStd: BStd, Architecture: architecture,
            ImageChannels: imageChannels, ImageHeight: side, ImageWidth: side, Readout: readout);
        var (nngp, ntk) = EmpiricalKernels(inputs, spec, channels, networks, seed);

        var analyticNngp = new ConvolutionalKernel(spec).Compute(inputs, inputs);
        var analyticNtk = new ConvolutionalKernel(spec with { Kind = KernelKind.Ntk }).Compute(inputs, inputs);

        var nngpError = MeanRelativeError(analyticNngp, nngp);
        var ntkError = MeanRelativeError(analyticNtk, ntk);
        Console.WriteLine($"{architecture} {readout} {side}: NNGP error {nngpError:P2}, NTK error {ntkError:P2}");
        Assert.True(nngpError < 0.05, $"{architecture} NNGP: mean relative error {nngpError:P2}");
        Assert.True(ntkError < 0.05, $"{architecture} NTK: mean relative error {ntkError:P2}");
    }

    internal static Tensor Inputs(int channels, int side, ulong seed = 17)
    {
        var generator = new Generator(seed);
        var x = randn(4, channels * side * side, dtype: ScalarType.Float64, generator: generator);
        // A near-copy, an anti-correlated image and a small one exercise the ReLU across its range.
        using Scalar a = 0.9, b = 0.3, c = 1.5, d = 0.5, e = 0.4;
        x[1] = x[0].mul(a).add(x[1].mul(b), One);
        x[2] = x[0].neg().mul(c).add(x[2].mul(d), One);
        x[3] = x[3].mul(e);
        return x;
    }

    internal enum Step { Conv, Relu, Pool }

    internal static Step[] Steps(KernelArchitecture architecture)
    {
        Step[] block = [Step.Conv, Step.Relu, Step.Pool];
        Step[] convRelu = [Step.Conv, Step.Relu];
        return architecture switch
        {
            KernelArchitecture.ConvNet3 => [.. block, .. block, .. block],
            KernelArchitecture.ConvNet => [.. convRelu, .. block, .. block, .. block],
            KernelArchitecture.Myrtle5 => [.. convRelu, .. convRelu, Step.Pool, .. convRelu, Step.Pool, .. convRelu],
            _ => throw new ArgumentException(architecture.ToString()),
        };
    }

    /// <summary>A random finite network: its parameters (N(0, 1)) and its hidden features before the readout.</summary>
    internal sealed class RandomNetwork
    {
        private readonly KernelSpec _spec;
        private readonly Step[] _steps;
        public List<Tensor> Weights { get; } = [];
        public List<Tensor> Biases { get; } = [];

        public RandomNetwork(KernelSpec spec, int channels, Generator generator, bool withReadout)
        {
            _spec = spec;
            _steps = Steps(spec.Architecture);
            long input = spec.ImageChannels;
            foreach (var step in _steps.Where(s => s == Step.Conv))
            {
                Weights.Add(randn(channels, input, 3, 3, dtype: ScalarType.Float64, generator: generator));
                Biases.Add(randn(channels, dtype: ScalarType.Float64, generator: generator));
                input = channels;
            }
            if (withReadout)
            {
                Weights.Add(randn(FeatureCount(channels), dtype: ScalarType.Float64, generator: generator));
                Biases.Add(randn(1, dtype: ScalarType.Float64, generator: generator));
            }
        }

        public long FeatureCount(long channels)
        {
            long side = _spec.ImageHeight >> _steps.Count(s => s == Step.Pool);
            return _spec.Readout == KernelReadout.Flatten ? channels * side * side : channels;
        }

        /// <summary>The readout's input for rows x: [n, F].</summary>
        public Tensor Features(Tensor x)
        {
            var h = x.reshape(x.shape[0], _spec.ImageChannels, _spec.ImageHeight, _spec.ImageWidth);
            int conv = 0;
            foreach (var step in _steps)
            {
                switch (step)
                {
                    case Step.Conv:
                        var w = Weights[conv];
                        using (Scalar scale = _spec.WStd / Math.Sqrt(w.shape[1] * 9), bStd = _spec.BStd)
                            h = nn.functional.conv2d(h, w.mul(scale), Biases[conv].mul(bStd), padding: [1, 1]);
                        conv++;
                        break;
                    case Step.Relu:
                        h = nn.functional.relu(h);
                        break;
                    case Step.Pool:
                        h = nn.functional.avg_pool2d(h, [2, 2], [2, 2]);
                        break;
                }
            }
            return _spec.Readout == KernelReadout.Flatten ? h.flatten(1) : h.mean([2L, 3L]);
        }

        /// <summary>The scalar output per row: W_std/sqrt(F) w.features + b_std b.</summary>
        public Tensor Output(Tensor x)
        {
            var features = Features(x);
            using Scalar wScale = _spec.WStd / Math.Sqrt(features.shape[1]), bStd = _spec.BStd;
            return features.matmul(Weights[^1]).mul(wScale).add(Biases[^1].mul(bStd), One);
        }
    }

    private static (Tensor Nngp, Tensor Ntk) EmpiricalKernels(Tensor inputs, KernelSpec spec, int channels, int networks, ulong seed)
    {
        int n = (int)inputs.shape[0];
        var nngp = zeros(n, n, dtype: ScalarType.Float64);
        var ntk = zeros(n, n, dtype: ScalarType.Float64);
        var generator = new Generator(seed);
        for (int net = 0; net < networks; net++)
        {
            using var scope = NewDisposeScope();
            var network = new RandomNetwork(spec, channels, generator, withReadout: true);
            var parameters = network.Weights.Concat(network.Biases).ToList();
            foreach (var p in parameters) p.requires_grad_(true);
            var outputs = network.Output(inputs);
            var rows = new List<Tensor>();
            for (int i = 0; i < n; i++)
            {
                var grads = autograd.grad([outputs[i]], parameters, retain_graph: i + 1 < n);
                rows.Add(cat(grads.Select(g => g.flatten()).ToList(), 0));
            }
            var jacobian = stack(rows);
            ntk.add_(jacobian.matmul(jacobian.t()), One);
            using (no_grad())
            {
                var features = network.Features(inputs);
                using Scalar wVariance = spec.WStd * spec.WStd / features.shape[1], bVariance = spec.BStd * spec.BStd;
                nngp.add_(features.matmul(features.t()).mul(wVariance).add(bVariance, One), One);
            }
        }
        using Scalar count = networks;
        return (nngp.div_(count), ntk.div_(count));
    }

    internal static double MeanRelativeError(Tensor analytic, Tensor empirical)
    {
        var a = TensorAssert.ToArray(analytic);
        var e = TensorAssert.ToArray(empirical);
        return a.Zip(e, (x, y) => Math.Abs(x - y) / Math.Abs(x)).Average();
    }
}
