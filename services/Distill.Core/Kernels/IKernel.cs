using TorchSharp;

namespace Distill.Core.Kernels;

/// <summary>
/// An infinite-width network kernel over flattened inputs (rows of an n x d float64 tensor).
/// Results are differentiable with respect to both inputs through TorchSharp autograd.
/// </summary>
public interface IKernel
{
    KernelSpec Spec { get; }

    /// <summary>K(x1, x2), shape n1 x n2.</summary>
    torch.Tensor Compute(torch.Tensor x1, torch.Tensor x2);

    /// <summary>
    /// K(x, x), exactly symmetric, with the diagonal in closed form so that gradients
    /// stay finite where the two arguments coincide.
    /// </summary>
    torch.Tensor ComputeSymmetric(torch.Tensor x);
}
