namespace Distill.Client;

public enum KernelKind
{
    Ntk,
    Nngp,
}

/// <summary>
/// An infinite-width network kernel. Only <see cref="FullyConnected"/> exists today; the
/// architecture is a string so that a kernel this client does not know yet can still be named
/// in messages (sending one fails locally with an ArgumentException).
/// </summary>
/// <param name="Depth">Null: the server's default (1).</param>
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

    /// <summary>As the kernel service lists its kernels, e.g. "fully_connected/ntk".</summary>
    public override string ToString() => $"{Architecture}/{Kind.ToString().ToLowerInvariant()}";
}
