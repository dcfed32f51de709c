using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// A forward pass that keeps only its inputs and value; <see cref="Backward"/> recomputes the
/// kernel under autograd and pulls the cotangent back. For kernels without an analytic
/// vector-Jacobian product. Kernels that recompute in pieces override <see cref="Backward"/>
/// and keep the inputs, value and their disposal from here.
/// </summary>
internal class AutogradKernelForward : KernelForward
{
    private readonly Func<Tensor, Tensor, Tensor> _compute;
    private readonly Func<Tensor, Tensor> _computeSymmetric;
    private readonly List<IDisposable> _owned;

    public AutogradKernelForward(Func<Tensor, Tensor, Tensor> compute, Func<Tensor, Tensor> computeSymmetric,
        Tensor x1, Tensor x2, bool symmetric)
    {
        _compute = compute;
        _computeSymmetric = computeSymmetric;
        IsSymmetric = symmetric;
        using var scope = NewDisposeScope();
        using (no_grad())
        {
            X1 = x1.detach();
            X2 = symmetric ? X1 : x2.detach();
            Value = symmetric ? computeSymmetric(X1) : compute(X1, X2);
        }
        _owned = symmetric ? [X1, Value] : [X1, X2, Value];
        scope.Detach(_owned);
    }

    /// <summary>The inputs, detached; the same tensor twice for a symmetric block.</summary>
    protected Tensor X1 { get; }
    protected Tensor X2 { get; }

    public override Tensor Value { get; }
    public override bool IsSymmetric { get; }

    /// <summary>Throws unless the cotangent is n1 x n2, the shape of <see cref="Value"/>.</summary>
    protected void RequireCotangentShape(Tensor cotangent)
    {
        long n1 = X1.shape[0], n2 = X2.shape[0];
        if (cotangent.dim() != 2 || cotangent.shape[0] != n1 || cotangent.shape[1] != n2)
            throw new ArgumentException($"cotangent must have shape [{n1},{n2}], got [{string.Join(",", cotangent.shape)}]");
    }

    public override (Tensor? Grad1, Tensor? Grad2) Backward(Tensor cotangent, bool wantGrad1 = true, bool wantGrad2 = true)
    {
        RequireCotangentShape(cotangent);
        if (!IsSymmetric && !wantGrad1 && !wantGrad2)
            return (null, null);
        using var scope = NewDisposeScope();
        using var enabled = enable_grad();
        var a = X1.detach().requires_grad_(true);
        if (IsSymmetric)
        {
            var grad = autograd.grad([_computeSymmetric(a).mul(cotangent).sum()], [a])[0];
            return (grad.MoveToOuterDisposeScope(), null);
        }
        var b = X2.detach().requires_grad_(true);
        var grads = autograd.grad([_compute(a, b).mul(cotangent).sum()], [a, b]);
        return (wantGrad1 ? grads[0].MoveToOuterDisposeScope() : null, wantGrad2 ? grads[1].MoveToOuterDisposeScope() : null);
    }

    public override void Dispose()
    {
        foreach (var item in _owned) item.Dispose();
        _owned.Clear();
    }
}
