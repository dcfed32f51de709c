using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// RFAD's random-feature estimate of a convolutional NNGP (kernel-math.md section 5): N random
/// finite networks of the spec's architecture (3x3 SAME convolutions with <c>width</c> channels,
/// ReLU, 2x2 average pooling; weights N(0, W_std^2 / fan-in), biases N(0, b_std^2)), each giving
/// features phi_m(x) (the readout's input, F of them), and
/// K(x, x') = W_std^2 / (N F) sum_m phi_m(x) . phi_m(x') + b_std^2, an unbiased-in-the-limit
/// Monte Carlo estimate of the exact NNGP whose error shrinks as 1/sqrt(N width).
/// The networks are a pure function of <c>seed</c> and are redrawn on every call (no state is
/// held); images are processed in blocks whose widest feature map stays within
/// <c>maxChunkElements</c>. Gradients come from autograd.
/// </summary>
public sealed class RandomFeatureConvKernel : IKernel
{
    // Before this type's first float32 convolution (see TorchRuntime.LimitOneDnnOnAmd).
    static RandomFeatureConvKernel() => Runtime.TorchRuntime.LimitOneDnnOnAmd();

    public const int DefaultNetworks = 8;
    public const int DefaultWidth = 256;
    public const int MaxNetworks = 4096;
    public const int MaxWidth = 65536;

    private readonly ConvolutionalKernel.Layer[] _layers;

    /// <param name="spec">a convolutional architecture, NNGP (random features have no NTK counterpart here);
    /// its <see cref="KernelSpec.RandomFeatures"/> is replaced by (networks, width, seed), so that
    /// <see cref="Spec"/> names this kernel exactly.</param>
    public RandomFeatureConvKernel(KernelSpec spec, int networks = DefaultNetworks, int width = DefaultWidth, ulong seed = 0,
        long maxChunkElements = ConvolutionalKernel.DefaultMaxChunkElements)
    {
        // KernelSpec.Validate checks the architecture, kind, networks and width (one place for the limits).
        Spec = (spec with { RandomFeatures = new RandomFeatureSpec(networks, width, seed) }).Validate();
        if (maxChunkElements <= 0)
            throw new ArgumentException($"max_chunk_elements must be positive, got {maxChunkElements}", nameof(maxChunkElements));
        Networks = networks;
        Width = width;
        Seed = seed;
        MaxChunkElements = maxChunkElements;
        _layers = ConvolutionalKernel.Layers(spec.Architecture);
    }

    public KernelSpec Spec { get; }
    public int Networks { get; }
    public int Width { get; }
    public ulong Seed { get; }
    public long MaxChunkElements { get; }

    public Tensor Compute(Tensor x1, Tensor x2)
    {
        using var scope = NewDisposeScope();
        CheckOperands(x1, x2);
        Tensor? sum = null;
        for (int m = 0; m < Networks; m++)
        {
            var network = Draw(m, x1.dtype, x1.device);
            var product = Features(network, x1).matmul(Features(network, x2).t());
            sum = sum is null ? product : sum.add_(product, One);
        }
        return Scale(sum!).MoveToOuterDisposeScope();
    }

    public Tensor ComputeSymmetric(Tensor x)
    {
        using var scope = NewDisposeScope();
        CheckOperands(x, x);
        Tensor? sum = null;
        for (int m = 0; m < Networks; m++)
        {
            var features = Features(Draw(m, x.dtype, x.device), x);
            var product = features.matmul(features.t());
            sum = sum is null ? product : sum.add_(product, One);
        }
        // Exactly symmetric.
        using Scalar half = 0.5;
        return Scale(sum!.add(sum!.t(), One).mul_(half)).MoveToOuterDisposeScope();
    }

    public KernelForward Forward(Tensor x1, Tensor x2) => new AutogradKernelForward(Compute, ComputeSymmetric, x1, x2, symmetric: false);

    public KernelForward ForwardSymmetric(Tensor x) => new AutogradKernelForward(Compute, ComputeSymmetric, x, x, symmetric: true);

    private Tensor Scale(Tensor sum)
    {
        using Scalar scale = Spec.WStd * Spec.WStd / ((double)Networks * FeatureCount), bias = Spec.BStd * Spec.BStd;
        return sum.mul_(scale).add_(bias, One);
    }

    /// <summary>F: the length of one network's feature vector (the readout's input).</summary>
    public long FeatureCount
    {
        get
        {
            int pools = ConvolutionalKernel.PoolCount(Spec.Architecture);
            return Spec.Readout == KernelReadout.Flatten
                ? (long)Width * (Spec.ImageHeight >> pools) * (Spec.ImageWidth >> pools)
                : Width;
        }
    }

    /// <summary>
    /// Network m's conv weights [out, in, 3, 3] and biases, scaled N(0, 1) draws, from the seed alone
    /// (any m, also beyond <see cref="Networks"/>: a feature pool draws its networks here).
    /// </summary>
    public List<(Tensor Weight, Tensor Bias)> DrawNetwork(int m, ScalarType dtype, Device device) => Draw(m, dtype, device);

    /// <summary>phi(x) of one network from <see cref="DrawNetwork"/>, [n, F], differentiable in x (autograd).</summary>
    public Tensor NetworkFeatures(List<(Tensor Weight, Tensor Bias)> network, Tensor x) => Features(network, x);

    private List<(Tensor Weight, Tensor Bias)> Draw(int m, ScalarType dtype, Device device)
    {
        var generator = new Generator(unchecked(Seed * 0x9E3779B97F4A7C15UL + (ulong)m + 1));
        var parameters = new List<(Tensor, Tensor)>();
        long input = Spec.ImageChannels;
        foreach (var _ in _layers.Where(l => l == ConvolutionalKernel.Layer.Conv))
        {
            var weight = randn(Width, input, 3, 3, dtype: ScalarType.Float64, generator: generator).to(dtype, device);
            var bias = randn(Width, dtype: ScalarType.Float64, generator: generator).to(dtype, device);
            using Scalar weightStd = Spec.WStd / Math.Sqrt(input * 9), biasStd = Spec.BStd;
            parameters.Add((weight.mul_(weightStd), bias.mul_(biasStd)));
            input = Width;
        }
        return parameters;
    }

    /// <summary>The readout's input for rows x, [n, F], in blocks of images.</summary>
    private Tensor Features(List<(Tensor Weight, Tensor Bias)> network, Tensor x)
    {
        long n = x.shape[0];
        long perImage = (long)Width * Spec.ImageHeight * Spec.ImageWidth;
        long block = Math.Max(1, MaxChunkElements / perImage);
        if (n <= block)
            return BlockFeatures(network, x);
        var parts = new List<Tensor>();
        for (long start = 0; start < n; start += block)
            parts.Add(BlockFeatures(network, x.narrow(0, start, Math.Min(block, n - start))));
        return cat(parts, 0);
    }

    private Tensor BlockFeatures(List<(Tensor Weight, Tensor Bias)> network, Tensor x)
    {
        var h = x.reshape(x.shape[0], Spec.ImageChannels, Spec.ImageHeight, Spec.ImageWidth);
        int conv = 0;
        foreach (var layer in _layers)
        {
            h = layer switch
            {
                ConvolutionalKernel.Layer.Conv => nn.functional.conv2d(h, network[conv].Weight, network[conv++].Bias, padding: [1, 1]),
                ConvolutionalKernel.Layer.Relu => nn.functional.relu(h),
                _ => nn.functional.avg_pool2d(h, [2, 2], [2, 2]),
            };
        }
        return Spec.Readout == KernelReadout.Flatten ? h.flatten(1) : h.mean([2L, 3L]);
    }

    private void CheckOperands(Tensor x1, Tensor x2)
    {
        if (x1.dim() != 2 || x2.dim() != 2)
            throw new ArgumentException($"kernel inputs must be n x d matrices, got shapes [{string.Join(",", x1.shape)}] and [{string.Join(",", x2.shape)}]");
        long d = (long)Spec.ImageChannels * Spec.ImageHeight * Spec.ImageWidth;
        if (x1.shape[1] != d || x2.shape[1] != d)
            throw new ArgumentException($"kernel inputs must have C*H*W = {d} features, got {x1.shape[1]} and {x2.shape[1]}");
        if (x1.dtype != x2.dtype)
            throw new ArgumentException($"kernel inputs have different dtypes: {x1.dtype} and {x2.dtype}");
    }
}
