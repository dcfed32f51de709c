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
}

/// <summary>
/// A kernel as a value: architecture, NTK or NNGP, depth and the weight and bias
/// standard deviations of the NTK parameterisation (kernel-math.md section 1).
/// </summary>
public sealed record KernelSpec(
    KernelKind Kind = KernelKind.Ntk,
    int Depth = 1,
    double WStd = 1.4142135623730951,
    double BStd = 0.1,
    KernelArchitecture Architecture = KernelArchitecture.FullyConnected)
{
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
        return this;
    }

    public IKernel Create() => Validate().Architecture switch
    {
        KernelArchitecture.FullyConnected => new FullyConnectedKernel(this),
        _ => throw new InvalidFieldException("kernel.architecture", $"{Architecture} is not supported"),
    };

    public override string ToString() =>
        $"{Architecture} depth {Depth} {Kind.ToString().ToUpperInvariant()} (W_std {WStd:G6}, b_std {BStd:G6})";
}
