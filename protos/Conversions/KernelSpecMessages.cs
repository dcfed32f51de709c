using Distill.Protos.Kernel.V1;
using CoreKernels = Distill.Core.Kernels;

namespace Distill.Protos.Conversions;

public static class KernelSpecMessages
{
    public static KernelSpec ToMessage(this CoreKernels.KernelSpec spec) => new()
    {
        Architecture = Architecture.FullyConnected,
        Kind = spec.Kind == CoreKernels.KernelKind.Nngp ? KernelKind.Nngp : KernelKind.Ntk,
        Depth = spec.Depth,
        WStd = spec.WStd,
        BStd = spec.BStd,
    };
}
