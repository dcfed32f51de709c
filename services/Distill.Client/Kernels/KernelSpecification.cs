namespace Distill.Client;

public enum KernelKind
{
    Ntk,
    Nngp,
}

/// <summary>The layer sequence of a convolutional kernel (3x3 convolutions, 2x2 average pooling).</summary>
public enum ConvolutionalNetwork
{
    /// <summary>KIP's ConvNet: Conv-ReLU, then 3 x [Conv, ReLU, AvgPool]; image sides of 8 or more.</summary>
    ConvNet,
    /// <summary>3 x [Conv, ReLU, AvgPool]; image sides of 8 or more.</summary>
    ConvNet3,
    /// <summary>Myrtle-5; image sides of 4 or more.</summary>
    Myrtle5,
}

/// <summary>How a convolutional kernel's last feature map reaches its Dense readout.</summary>
public enum ConvolutionalReadout
{
    Flatten,
    GlobalAveragePool,
}

/// <summary>
/// An infinite-width network kernel: <see cref="FullyConnected"/>, <see cref="Convolutional"/>
/// (exact NNGP or NTK of a ConvNet, ConvNet3 or Myrtle-5) or <see cref="RandomFeatures"/> (RFAD's
/// random-feature estimate of a convolutional NNGP). The architecture is a string so that a kernel
/// this client does not know yet can still be named in messages (sending one fails locally with an
/// ArgumentException). Build convolutional kernels with <see cref="ConvolutionalKernel"/> and
/// <see cref="RandomFeatureKernel"/>; their properties are ignored for a fully connected kernel.
/// </summary>
/// <param name="Depth">Fully connected only. Null: the server's default (1).</param>
/// <param name="WStd">Null: the server's default (sqrt 2).</param>
/// <param name="BStd">Null: the server's default (0.1).</param>
public sealed record KernelSpecification(
    string Architecture = KernelSpecification.FullyConnected,
    KernelKind Kind = KernelKind.Ntk,
    int? Depth = null,
    double? WStd = null,
    double? BStd = null)
{
    public const string FullyConnected = "fully_connected";
    public const string Convolutional = "convolutional";
    public const string RandomFeatures = "random_features";

    /// <summary>Convolutional kernels: the network.</summary>
    public ConvolutionalNetwork Network { get; init; }

    /// <summary>Convolutional kernels: the readout.</summary>
    public ConvolutionalReadout Readout { get; init; }

    /// <summary>Convolutional kernels: the image shape they read, which must be the dataset's.</summary>
    public int ImageChannels { get; init; }
    public int ImageHeight { get; init; }
    public int ImageWidth { get; init; }

    /// <summary>Random features: networks drawn (null: the server's default, 8).</summary>
    public int? Networks { get; init; }

    /// <summary>Random features: channels per convolution (null: the server's default, 256).</summary>
    public int? Width { get; init; }

    /// <summary>Random features: the seed the networks are drawn from.</summary>
    public ulong Seed { get; init; }

    /// <summary>The exact NTK or NNGP of a convolutional network on C x H x W images.</summary>
    public static KernelSpecification ConvolutionalKernel(ConvolutionalNetwork network, int imageChannels, int imageHeight, int imageWidth,
        KernelKind kind = KernelKind.Ntk, ConvolutionalReadout readout = ConvolutionalReadout.Flatten) =>
        new(Convolutional, kind)
        {
            Network = network, Readout = readout, ImageChannels = imageChannels, ImageHeight = imageHeight, ImageWidth = imageWidth,
        };

    /// <summary>RFAD's random-feature estimate of a convolutional network's NNGP on C x H x W images.</summary>
    public static KernelSpecification RandomFeatureKernel(ConvolutionalNetwork network, int imageChannels, int imageHeight, int imageWidth,
        int? networks = null, int? width = null, ulong seed = 0, ConvolutionalReadout readout = ConvolutionalReadout.Flatten) =>
        new(RandomFeatures, KernelKind.Nngp)
        {
            Network = network, Readout = readout, ImageChannels = imageChannels, ImageHeight = imageHeight, ImageWidth = imageWidth,
            Networks = networks, Width = width, Seed = seed,
        };

    /// <summary>As the kernel service lists its kernels, e.g. "fully_connected/ntk".</summary>
    public override string ToString() => $"{Architecture}/{Kind.ToString().ToLowerInvariant()}";
}
