using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// A forward pass that keeps only its inputs and value; <see cref="Backward"/> recomputes the
/// kernel under autograd and pulls the cotangent back. For kernels without an analytic
/// vector-Jacobian product.
/// </summary>
internal sealed class AutogradKernelForward : KernelForward
{
    private readonly Func<Tensor, Tensor, Tensor> _compute;
    private readonly Func<Tensor, Tensor> _computeSymmetric;
    private readonly Tensor _x1;
    private readonly Tensor _x2;
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
            _x1 = x1.detach();
            _x2 = symmetric ? _x1 : x2.detach();
            Value = symmetric ? computeSymmetric(_x1) : compute(_x1, _x2);
        }
        _owned = symmetric ? [_x1, Value] : [_x1, _x2, Value];
        scope.Detach(_owned);
    }

    public override Tensor Value { get; }
    public override bool IsSymmetric { get; }

    public override (Tensor? Grad1, Tensor? Grad2) Backward(Tensor cotangent, bool wantGrad1 = true, bool wantGrad2 = true)
    {
        long n1 = _x1.shape[0], n2 = _x2.shape[0];
        if (cotangent.dim() != 2 || cotangent.shape[0] != n1 || cotangent.shape[1] != n2)
            throw new ArgumentException($"cotangent must have shape [{n1},{n2}], got [{string.Join(",", cotangent.shape)}]");
        if (!IsSymmetric && !wantGrad1 && !wantGrad2)
            return (null, null);
        using var scope = NewDisposeScope();
        using var enabled = enable_grad();
        var a = _x1.detach().requires_grad_(true);
        if (IsSymmetric)
        {
            var grad = autograd.grad([_computeSymmetric(a).mul(cotangent).sum()], [a])[0];
            return (grad.MoveToOuterDisposeScope(), null);
        }
        var b = _x2.detach().requires_grad_(true);
        var grads = autograd.grad([_compute(a, b).mul(cotangent).sum()], [a, b]);
        return (wantGrad1 ? grads[0].MoveToOuterDisposeScope() : null, wantGrad2 ? grads[1].MoveToOuterDisposeScope() : null);
    }

    public override void Dispose()
    {
        foreach (var item in _owned) item.Dispose();
        _owned.Clear();
    }
}
