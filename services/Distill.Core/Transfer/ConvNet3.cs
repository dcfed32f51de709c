using TorchSharp;
using TorchSharp.Modules;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Transfer;

/// <summary>
/// The dataset-distillation ConvNet-3 as a finite network: three blocks of 3x3 convolution
/// (padding 1, <see cref="Width"/> channels), optional instance norm (affine, as DC/DSA's
/// 'instancenorm'), ReLU and 2x2 average pooling, then a linear readout of the flattened
/// features. An H x W input leaves floor(H/8) x floor(W/8) positions for the readout.
/// Parameters are drawn from a seeded generator (PyTorch's default Kaiming-uniform law:
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases of convolutions and the readout;
/// norm scales 1, shifts 0), so one seed gives one network without touching global RNG state.
/// </summary>
public sealed class ConvNet3 : nn.Module<Tensor, Tensor>
{
    // Before this type's first float32 convolution (see TorchRuntime.LimitOneDnnOnAmd).
    static ConvNet3() => Runtime.TorchRuntime.LimitOneDnnOnAmd();

    public const int DefaultWidth = 128;
    private readonly Sequential features;
    private readonly Linear readout;

    public ConvNet3(int channels, int height, int width, int classes, int networkWidth = DefaultWidth, bool instanceNorm = true)
        : base(nameof(ConvNet3))
    {
        if (channels < 1 || height < 8 || width < 8)
            throw new ArgumentException($"ConvNet-3 needs at least one channel and 8 x 8 pixels, got {channels}x{height}x{width}");
        if (classes < 2) throw new ArgumentException($"classes must be at least 2, got {classes}");
        if (networkWidth < 1) throw new ArgumentException($"width must be positive, got {networkWidth}");
        Channels = channels;
        Height = height;
        Width = width;
        Classes = classes;
        NetworkWidth = networkWidth;
        InstanceNorm = instanceNorm;
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int block = 0, inputs = channels; block < 3; block++, inputs = networkWidth)
        {
            layers.Add(($"conv{block}", nn.Conv2d(inputs, networkWidth, 3, padding: 1)));
            if (instanceNorm) layers.Add(($"norm{block}", nn.InstanceNorm2d(networkWidth, affine: true)));
            layers.Add(($"relu{block}", nn.ReLU()));
            layers.Add(($"pool{block}", nn.AvgPool2d(2, 2)));
        }
        features = nn.Sequential(layers);
        readout = nn.Linear(FeatureCount, classes);
        RegisterComponents();
    }

    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int Classes { get; }
    public int NetworkWidth { get; }
    public bool InstanceNorm { get; }

    /// <summary>Inputs of the readout: width x floor(H/8) x floor(W/8).</summary>
    public long FeatureCount => (long)NetworkWidth * (Height / 8) * (Width / 8);

    /// <summary>
    /// Parameters counted by hand: per block 9 c_in w + w (convolution) and 2 w (norm), then
    /// features x classes + classes for the readout.
    /// </summary>
    public static long ExpectedParameterCount(int channels, int height, int width, int classes, int networkWidth, bool instanceNorm)
    {
        long w = networkWidth;
        long convs = (9L * channels * w + w) + 2 * (9L * w * w + w);
        long norms = instanceNorm ? 3 * 2 * w : 0;
        long features = w * (height / 8) * (width / 8);
        return convs + norms + features * classes + classes;
    }

    /// <summary>NCHW images (any floating type, converted to the parameters' type) to [N, classes] logits.</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to_type(readout.weight!.dtype);
        var h = features.call(x).flatten(1);
        return readout.call(h).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Redraws every parameter from <paramref name="seed"/> (see the class summary). With
    /// <paramref name="kernel"/> (W_std, b_std), weights are N(0, W_std^2 / fan_in) and biases N(0, b_std^2)
    /// instead: the law under which the network's kernel is the NNGP the images were distilled for (RFAD's finite networks).
    /// </summary>
    public void Initialize(long seed, (double WStd, double BStd)? kernel = null)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + 0x2545F4914F6CDD1DUL));
        using var noGrad = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.Contains("norm", StringComparison.Ordinal))
            {
                if (name.EndsWith("weight", StringComparison.Ordinal)) parameter.fill_(One);
                else parameter.zero_();
                continue;
            }
            // fan_in: the weight's inputs per output; a bias uses its layer's weight's fan_in.
            var weightName = name.EndsWith("bias", StringComparison.Ordinal) ? name[..^"bias".Length] + "weight" : name;
            var weight = get_parameter(weightName) ?? throw new InvalidOperationException($"no weight for {name}");
            long fanIn = weight.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            // On the CPU, where the generator lives.
            if (kernel is var (wStd, bStd))
            {
                using Scalar std = name.EndsWith("bias", StringComparison.Ordinal) ? bStd : wStd / Math.Sqrt(fanIn);
                parameter.copy_(randn(parameter.shape, dtype: parameter.dtype, generator: generator).mul_(std));
                continue;
            }
            // Uniform on [-bound, bound].
            using Scalar width = 2 / Math.Sqrt(fanIn), bound = 1 / Math.Sqrt(fanIn);
            parameter.copy_(rand(parameter.shape, dtype: parameter.dtype, generator: generator).mul_(width).sub_(bound));
        }
    }
}
