using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// An infinite-width network kernel over flattened inputs (rows of an n x d float64 tensor).
/// <see cref="Compute"/> is differentiable through TorchSharp autograd; <see cref="Forward"/>
/// keeps what an analytic vector-Jacobian product needs, which is several times cheaper
/// than autograd on the large target x support blocks of a KIP step.
/// </summary>
public interface IKernel
{
    KernelSpec Spec { get; }

    /// <summary>K(x1, x2), shape n1 x n2.</summary>
    Tensor Compute(Tensor x1, Tensor x2);

    /// <summary>
    /// K(x, x), exactly symmetric, with the diagonal in closed form so that gradients
    /// stay finite where the two arguments coincide.
    /// </summary>
    Tensor ComputeSymmetric(Tensor x);

    /// <summary>K(x1, x2) with the intermediates for one or more backward passes.</summary>
    KernelForward Forward(Tensor x1, Tensor x2);

    /// <summary>K(x, x) as in <see cref="ComputeSymmetric"/>, ready for a backward pass.</summary>
    KernelForward ForwardSymmetric(Tensor x);
}

/// <summary>A computed Gram block that can pull a cotangent back to its inputs.</summary>
public abstract class KernelForward : IDisposable
{
    public abstract Tensor Value { get; }
    public abstract bool IsSymmetric { get; }

    /// <summary>
    /// Gradients of sum(cotangent * K) with respect to x1 and x2, each only when asked
    /// for. For a symmetric block the single input's gradient is returned as Grad1.
    /// </summary>
    public abstract (Tensor? Grad1, Tensor? Grad2) Backward(Tensor cotangent, bool wantGrad1 = true, bool wantGrad2 = true);

    public abstract void Dispose();
}
