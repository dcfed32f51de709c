using Distill.Core.Errors;
using Distill.Protos.Kernel.V1;
using CoreKernels = Distill.Core.Kernels;

namespace Distill.Adapters.Conversions;

/// <summary>Kernel specs between the API and the engine; unset fields take the engine's defaults.</summary>
public static class KernelSpecMessages
{
    /// <summary>The engine's spec; throws <see cref="InvalidFieldException"/> naming <paramref name="field"/>'s subfield.</summary>
    public static CoreKernels.KernelSpec ToCore(this KernelSpec? message, string field = "kernel")
    {
        var defaults = new CoreKernels.KernelSpec();
        switch (message?.ArchitectureCase ?? KernelSpec.ArchitectureOneofCase.None)
        {
            case KernelSpec.ArchitectureOneofCase.None:
                return defaults;
            case KernelSpec.ArchitectureOneofCase.FullyConnected:
                var fc = message!.FullyConnected;
                var kind = fc.Kind switch
                {
                    KernelKind.Unspecified or KernelKind.Ntk => CoreKernels.KernelKind.Ntk,
                    KernelKind.Nngp => CoreKernels.KernelKind.Nngp,
                    _ => throw new InvalidFieldException($"{field}.fully_connected.kind", $"unknown kernel kind {(int)fc.Kind}"),
                };
                var spec = new CoreKernels.KernelSpec(kind,
                    fc.HasDepth ? fc.Depth : defaults.Depth,
                    fc.HasWStd ? fc.WStd : defaults.WStd,
                    fc.HasBStd ? fc.BStd : defaults.BStd);
                try { return spec.Validate(); }
                catch (InvalidFieldException e) { throw e.Within($"{field}.fully_connected", "kernel"); }
            default:
                throw new InvalidFieldException(field, $"architecture {message!.ArchitectureCase} is not supported");
        }
    }

    /// <summary>The message for a spec, every field explicit.</summary>
    public static KernelSpec ToMessage(this CoreKernels.KernelSpec spec) => spec.Architecture != CoreKernels.KernelArchitecture.FullyConnected
        // The API has no message for the engine's other architectures yet: never send one as fully connected.
        ? throw new NotSupportedException($"the API cannot carry a {spec.Architecture} kernel yet")
        : new()
    {
        FullyConnected = new FullyConnectedSpec
        {
            Kind = spec.Kind == CoreKernels.KernelKind.Nngp ? KernelKind.Nngp : KernelKind.Ntk,
            Depth = spec.Depth,
            WStd = spec.WStd,
            BStd = spec.BStd,
        },
    };
}
