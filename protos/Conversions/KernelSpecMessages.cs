using Distill.Protos.Kernel.V1;
using CoreKernels = Distill.Core.Kernels;

namespace Distill.Protos.Conversions;

/// <summary>Kernel specs between the API and the engine; unset optional fields take the engine's defaults.</summary>
public static class KernelSpecMessages
{
    /// <summary>The engine's spec; throws <see cref="ArgumentException"/> naming <paramref name="field"/>'s subfield.</summary>
    public static CoreKernels.KernelSpec ToCore(this KernelSpec? message, string field = "kernel")
    {
        message ??= new KernelSpec();
        if (message.Architecture is not (Architecture.Unspecified or Architecture.FullyConnected))
            throw new ArgumentException($"{field}.architecture: {message.Architecture} is not supported (supported: ARCHITECTURE_FULLY_CONNECTED)", field);
        var kind = message.Kind switch
        {
            KernelKind.Unspecified or KernelKind.Ntk => CoreKernels.KernelKind.Ntk,
            KernelKind.Nngp => CoreKernels.KernelKind.Nngp,
            _ => throw new ArgumentException($"{field}.kind: unknown kernel kind {(int)message.Kind}", field),
        };
        var defaults = new CoreKernels.KernelSpec();
        var spec = new CoreKernels.KernelSpec(kind,
            message.HasDepth ? message.Depth : defaults.Depth,
            message.HasWStd ? message.WStd : defaults.WStd,
            message.HasBStd ? message.BStd : defaults.BStd);
        try { return spec.Validate(); }
        catch (ArgumentException e) { throw new ArgumentException(e.Message.Replace("kernel.", field + ".", StringComparison.Ordinal), field); }
    }

    public static KernelSpec ToMessage(this CoreKernels.KernelSpec spec) => new()
    {
        Architecture = Architecture.FullyConnected,
        Kind = spec.Kind == CoreKernels.KernelKind.Nngp ? KernelKind.Nngp : KernelKind.Ntk,
        Depth = spec.Depth,
        WStd = spec.WStd,
        BStd = spec.BStd,
    };
}
