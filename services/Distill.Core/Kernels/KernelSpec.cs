using Distill.Core.Errors;
namespace Distill.Core.Kernels;

/// <summary>Which infinite-width kernel of the network to use.</summary>
public enum KernelKind
{
    /// <summary>Neural tangent kernel: the mean of a wide net trained by gradient descent.</summary>
    Ntk,
    /// <summary>NNGP kernel: the Bayesian posterior of a wide net (last layer trained only).</summary>
    Nngp,
}

/// <summary>The architecture whose infinite-width limit gives the kernel.</summary>
public enum KernelArchitecture
{
    FullyConnected,
    /// <summary>KIP NeurIPS-2021 "ConvNet": Conv-ReLU, then 3 x [Conv 3x3 -> ReLU -> AvgPool 2x2], readout, Dense (kernel-math.md section 2).</summary>
    ConvNet,
    /// <summary>"ConvNet3": 3 x [Conv 3x3 -> ReLU -> AvgPool 2x2], readout, Dense.</summary>
    ConvNet3,
    /// <summary>Myrtle-5: Conv-ReLU, Conv-ReLU, AvgPool, Conv-ReLU, AvgPool, Conv-ReLU, readout (usually global average pooling), Dense.</summary>
    Myrtle5,
}

/// <summary>How a convolutional architecture turns its last feature map into the input of the Dense readout.</summary>
public enum KernelReadout
{
    /// <summary>Flatten: the readout sees every pixel's features; only same-pixel pairs matter (kernel-math.md section 2).</summary>
    Flatten,
    /// <summary>Global average pooling over pixels: every pixel pair matters.</summary>
    GlobalAveragePool,
}

/// <summary>
/// RFAD's random-feature estimate instead of the exact kernel (<see cref="RandomFeatureConvKernel"/>):
/// <paramref name="Networks"/> random finite networks of the spec's architecture, each
/// <paramref name="Width"/> channels wide, a pure function of <paramref name="Seed"/>.
/// </summary>
public sealed record RandomFeatureSpec(
    int Networks = RandomFeatureConvKernel.DefaultNetworks,
    int Width = RandomFeatureConvKernel.DefaultWidth,
    ulong Seed = 0);

/// <summary>
/// A kernel as a value: architecture, NTK or NNGP, depth and the weight and bias
/// standard deviations of the NTK parameterisation (kernel-math.md section 1).
/// Convolutional architectures fix their own layer sequence (<see cref="Depth"/> is
/// the fully connected kernel's only) and read their n x (C*H*W) input rows as
/// channel-major C x H x W images of the given size, with the given readout.
/// With <see cref="RandomFeatures"/> set, a convolutional NNGP is estimated by random features.
/// </summary>
public sealed record KernelSpec(
    KernelKind Kind = KernelKind.Ntk,
    int Depth = 1,
    double WStd = 1.4142135623730951,
    double BStd = 0.1,
    KernelArchitecture Architecture = KernelArchitecture.FullyConnected,
    int ImageChannels = 0,
    int ImageHeight = 0,
    int ImageWidth = 0,
    KernelReadout Readout = KernelReadout.Flatten,
    RandomFeatureSpec? RandomFeatures = null)
{
    /// <summary>Largest image side a convolutional kernel accepts.</summary>
    public const int MaxImageSide = 1024;
    public const int MaxImageChannels = 4096;

    public bool IsConvolutional => Architecture != KernelArchitecture.FullyConnected;

    public const int MaxDepth = 64;

    /// <summary>Throws <see cref="InvalidFieldException"/> naming the offending field.</summary>
    public KernelSpec Validate()
    {
        if (!Enum.IsDefined(Kind))
            throw new InvalidFieldException("kernel.kind", $"unknown kernel kind {(int)Kind}");
        if (!Enum.IsDefined(Architecture))
            throw new InvalidFieldException("kernel.architecture", $"unknown architecture {(int)Architecture}");
        if (Depth < 0 || Depth > MaxDepth)
            throw new InvalidFieldException("kernel.depth", $"must be between 0 and {MaxDepth}, got {Depth}");
        if (!double.IsFinite(WStd) || WStd <= 0)
            throw new InvalidFieldException("kernel.w_std", $"must be a positive finite number, got {WStd}");
        if (!double.IsFinite(BStd) || BStd < 0)
            throw new InvalidFieldException("kernel.b_std", $"must be a non-negative finite number, got {BStd}");
        if (IsConvolutional)
        {
            if (!Enum.IsDefined(Readout))
                throw new InvalidFieldException("kernel.readout", $"unknown readout {(int)Readout}");
            if (ImageChannels <= 0 || ImageChannels > MaxImageChannels)
                throw new InvalidFieldException("kernel.image_channels", $"must be between 1 and {MaxImageChannels}, got {ImageChannels}");
            // Each 2x2 pooling halves a side (rounding down): the last feature map must keep a pixel.
            int minimumSide = 1 << ConvolutionalKernel.PoolCount(Architecture);
            if (ImageHeight < minimumSide || ImageHeight > MaxImageSide)
                throw new InvalidFieldException("kernel.image_height", $"{Architecture} needs between {minimumSide} and {MaxImageSide} pixels, got {ImageHeight}");
            if (ImageWidth < minimumSide || ImageWidth > MaxImageSide)
                throw new InvalidFieldException("kernel.image_width", $"{Architecture} needs between {minimumSide} and {MaxImageSide} pixels, got {ImageWidth}");
        }
        if (RandomFeatures is { } features)
        {
            if (!IsConvolutional)
                throw new InvalidFieldException("kernel.architecture", $"random features need a convolutional architecture, got {Architecture}");
            if (Kind != KernelKind.Nngp)
                throw new InvalidFieldException("kernel.kind", "random features estimate the NNGP only");
            if (features.Networks <= 0 || features.Networks > RandomFeatureConvKernel.MaxNetworks)
                throw new InvalidFieldException("kernel.networks", $"must be between 1 and {RandomFeatureConvKernel.MaxNetworks}, got {features.Networks}");
            if (features.Width <= 0 || features.Width > RandomFeatureConvKernel.MaxWidth)
                throw new InvalidFieldException("kernel.width", $"must be between 1 and {RandomFeatureConvKernel.MaxWidth}, got {features.Width}");
        }
        return this;
    }

    /// <summary>
    /// Throws <see cref="InvalidFieldException"/> naming the image field that differs when a
    /// convolutional kernel is given images of shape C x H x W; any shape suits a fully connected one.
    /// </summary>
    public void CheckImageShape(long channels, long height, long width)
    {
        if (!IsConvolutional) return;
        var given = $"the images are {channels}x{height}x{width}";
        if (channels != ImageChannels)
            throw new InvalidFieldException("kernel.image_channels", $"the kernel reads {ImageChannels} channels, {given}");
        if (height != ImageHeight)
            throw new InvalidFieldException("kernel.image_height", $"the kernel reads images {ImageHeight} pixels high, {given}");
        if (width != ImageWidth)
            throw new InvalidFieldException("kernel.image_width", $"the kernel reads images {ImageWidth} pixels wide, {given}");
    }

    /// <summary>
    /// The one factory from spec to kernel. <paramref name="maxChunkElements"/> bounds the largest
    /// intermediate tensor of one chunk of a convolutional kernel (a server passes its memory budget);
    /// fully connected kernels need no chunking.
    /// </summary>
    public IKernel Create(long maxChunkElements = ConvolutionalKernel.DefaultMaxChunkElements) => Validate() switch
    {
        { RandomFeatures: { } features } => new RandomFeatureConvKernel(this, features.Networks, features.Width, features.Seed, maxChunkElements),
        { Architecture: KernelArchitecture.FullyConnected } => new FullyConnectedKernel(this),
        { IsConvolutional: true } => new ConvolutionalKernel(this, maxChunkElements),
        _ => throw new InvalidFieldException("kernel.architecture", $"{Architecture} is not supported"),
    };

    public override string ToString() => RandomFeatures is { } features
        ? $"{Architecture} {Readout} random-feature NNGP ({features.Networks} networks of width {features.Width}, seed {features.Seed}) on {ImageChannels}x{ImageHeight}x{ImageWidth} (W_std {WStd:G6}, b_std {BStd:G6})"
        : IsConvolutional
        ? $"{Architecture} {Readout} {Kind.ToString().ToUpperInvariant()} on {ImageChannels}x{ImageHeight}x{ImageWidth} (W_std {WStd:G6}, b_std {BStd:G6})"
        : $"{Architecture} depth {Depth} {Kind.ToString().ToUpperInvariant()} (W_std {WStd:G6}, b_std {BStd:G6})";
}
