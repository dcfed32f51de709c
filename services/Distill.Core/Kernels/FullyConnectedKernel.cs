using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// NNGP and NTK of Flatten -> [Dense -> ReLU] x depth -> Dense in the NTK parameterisation
/// (kernel-math.md section 1; neural-tangents stax.Dense/Relu). Inputs are n x d rows;
/// the input covariance is x.x'/d. Everything runs in the inputs' dtype (use float64).
/// </summary>
public sealed class FullyConnectedKernel : IKernel
{
    private readonly double _w2;
    private readonly double _b2;

    public FullyConnectedKernel(KernelSpec spec)
    {
        Spec = spec.Validate();
        _w2 = spec.WStd * spec.WStd;
        _b2 = spec.BStd * spec.BStd;
    }

    public KernelSpec Spec { get; }

    public Tensor Compute(Tensor x1, Tensor x2)
    {
        using var scope = NewDisposeScope();
        return Evaluate(x1, x2, symmetric: false, layers: null).MoveToOuterDisposeScope();
    }

    public Tensor ComputeSymmetric(Tensor x)
    {
        using var scope = NewDisposeScope();
        return Evaluate(x, x, symmetric: true, layers: null).MoveToOuterDisposeScope();
    }

    public KernelForward Forward(Tensor x1, Tensor x2) => new Cached(this, x1, x2, symmetric: false);

    public KernelForward ForwardSymmetric(Tensor x) => new Cached(this, x, x, symmetric: true);

    /// <summary>The recursion; when <paramref name="layers"/> is given, each layer's state is kept for the backward pass.</summary>
    private Tensor Evaluate(Tensor x1, Tensor x2, bool symmetric, List<Layer>? layers)
    {
        CheckOperands(x1, x2);
        double d = x1.shape[1];
        // Scalars held for the whole call (see HeldScalars).
        using Scalar inputScale = _w2 / d, halfInputScale = _w2 / (2 * d), w2 = _w2, b2 = _b2, halfW2 = _w2 / 2;
        // First Dense layer: Sigma^1 = W^2 x.x'/d + b^2 and Theta^1 = Sigma^1.
        var products = x1.matmul(x2.t());
        // BLAS need not make x x^T exactly symmetric (on some CPUs it does not); (A + A^T)/2 is,
        // and every later step keeps it so.
        var k = (symmetric ? products.add(products.t(), One).mul_(halfInputScale) : products.mul_(inputScale)).add_(b2, One);
        var q1 = SquaredNorms(x1).mul_(inputScale).add_(b2, One);
        var q2 = symmetric ? q1 : SquaredNorms(x2).mul_(inputScale).add_(b2, One);
        var offDiagonal = symmetric ? eye(k.shape[0], dtype: k.dtype, device: k.device).neg_().add_(One, One) : null;
        var ntk = k;

        for (int layer = 0; layer < Spec.Depth; layer++)
        {
            var relu = ReluArcCosine.Apply(k, q1, q2, offDiagonal);
            layers?.Add(new Layer(relu, ntk));
            var next = relu.Expectation.mul(w2).add_(b2, One);
            if (Spec.Kind == KernelKind.Ntk)
                ntk = next.addcmul(relu.Derivative, ntk, value: w2);
            k = next;
            // E[relu(u)^2] = q/2 exactly.
            q1 = q1.mul(halfW2).add_(b2, One);
            q2 = symmetric ? q1 : q2.mul(halfW2).add_(b2, One);
        }
        return Spec.Kind == KernelKind.Ntk ? ntk : k;
    }

    /// <summary>Backward through the recursion of <see cref="Evaluate"/>, layer by layer in reverse.</summary>
    private (Tensor? Grad1, Tensor? Grad2) Backward(Tensor x1, Tensor x2, bool symmetric, List<Layer> layers,
        Tensor cotangent, bool wantGrad1, bool wantGrad2)
    {
        using Scalar w2 = _w2, halfW2 = _w2 / 2, scale = _w2 / x1.shape[1], twoScale = 2 * _w2 / x1.shape[1];
        var gradK = cotangent;                                       // d/dSigma^(l+1)
        Tensor? gradNtk = Spec.Kind == KernelKind.Ntk ? cotangent : null;  // d/dTheta^(l+1)
        var n1 = x1.shape[0];
        var n2 = x2.shape[0];
        var gradQ1 = zeros(n1, dtype: x1.dtype, device: x1.device);
        var gradQ2 = zeros(n2, dtype: x2.dtype, device: x2.device);

        for (int layer = layers.Count - 1; layer >= 0; layer--)
        {
            var (relu, ntkIn) = layers[layer];
            // q^(l+1) = W^2 q^l / 2 + b^2
            gradQ1 = gradQ1.mul(halfW2);
            if (!symmetric) gradQ2 = gradQ2.mul(halfW2);
            // Sigma^(l+1) = W^2 Sigma-hat + b^2; Theta^(l+1) = Sigma^(l+1) + W^2 Sigma-dot Theta^l
            var gradExpectation = gradK.mul(w2);
            Tensor? gradDerivative = null;
            if (gradNtk is not null)
            {
                gradDerivative = gradNtk.mul(ntkIn).mul_(w2);
                gradNtk = gradNtk.mul(relu.Derivative).mul_(w2);
            }
            var (dk, dq1, dq2) = relu.Backward(gradExpectation, gradDerivative);
            gradK = gradNtk is null ? dk : dk.add_(gradNtk, One);       // Theta^l = Sigma^l + ...
            gradQ1 = symmetric ? gradQ1.add(dq1, One).add_(dq2, One) : gradQ1.add(dq1, One);
            if (!symmetric) gradQ2 = gradQ2.add(dq2, One);
        }

        // Sigma^1 = W^2 x.x'/d + b^2, q^1 = W^2 |x|^2/d + b^2
        if (symmetric)
        {
            var grad = gradK.add(gradK.t(), One).matmul(x1).mul_(scale).add_(x1.mul(gradQ1.unsqueeze(1)).mul_(twoScale), One);
            return (grad, null);
        }
        Tensor? grad1 = wantGrad1 ? gradK.matmul(x2).mul_(scale).add_(x1.mul(gradQ1.unsqueeze(1)).mul_(twoScale), One) : null;
        Tensor? grad2 = wantGrad2 ? gradK.t().matmul(x1).mul_(scale).add_(x2.mul(gradQ2.unsqueeze(1)).mul_(twoScale), One) : null;
        return (grad1, grad2);
    }

    // One reduction pass without an n x d temporary; under autograd the plain sum of
    // squares instead, whose gradient stays finite at a zero-norm row.
    private static Tensor SquaredNorms(Tensor x) =>
        x.requires_grad ? x.square().sum(1) : x.norm(dim: 1).square();

    private static void CheckOperands(Tensor x1, Tensor x2)
    {
        if (x1.dim() != 2 || x2.dim() != 2)
            throw new ArgumentException($"kernel inputs must be n x d matrices, got shapes [{string.Join(",", x1.shape)}] and [{string.Join(",", x2.shape)}]");
        if (x1.shape[1] != x2.shape[1])
            throw new ArgumentException($"kernel inputs have different feature counts: {x1.shape[1]} and {x2.shape[1]}");
        if (x1.shape[1] == 0)
            throw new ArgumentException("kernel inputs have no features");
        if (x1.dtype != x2.dtype)
            throw new ArgumentException($"kernel inputs have different dtypes: {x1.dtype} and {x2.dtype}");
    }

    private sealed record Layer(ReluArcCosine Relu, Tensor NtkIn);

    /// <summary>A forward pass that owns every tensor it made, until disposed.</summary>
    private sealed class Cached : KernelForward
    {
        private readonly FullyConnectedKernel _kernel;
        private readonly Tensor _x1;
        private readonly Tensor _x2;
        private readonly List<Layer> _layers = [];
        private readonly List<IDisposable> _owned;

        public Cached(FullyConnectedKernel kernel, Tensor x1, Tensor x2, bool symmetric)
        {
            _kernel = kernel;
            IsSymmetric = symmetric;
            using var scope = NewDisposeScope();
            using (no_grad())
            {
                _x1 = x1.detach();
                _x2 = symmetric ? _x1 : x2.detach();
                Value = kernel.Evaluate(_x1, _x2, symmetric, _layers);
            }
            // Take the scope's tensors over: they must outlive this constructor.
            _owned = scope.DisposablesView.ToList();
            scope.Detach(_owned);
        }

        public override Tensor Value { get; }
        public override bool IsSymmetric { get; }

        public override (Tensor? Grad1, Tensor? Grad2) Backward(Tensor cotangent, bool wantGrad1 = true, bool wantGrad2 = true)
        {
            var n1 = _x1.shape[0];
            var n2 = _x2.shape[0];
            if (cotangent.dim() != 2 || cotangent.shape[0] != n1 || cotangent.shape[1] != n2)
                throw new ArgumentException($"cotangent must have shape [{n1},{n2}], got [{string.Join(",", cotangent.shape)}]");
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var (g1, g2) = _kernel.Backward(_x1, _x2, IsSymmetric, _layers, cotangent, wantGrad1, wantGrad2);
            return (g1?.MoveToOuterDisposeScope(), g2?.MoveToOuterDisposeScope());
        }

        public override void Dispose()
        {
            foreach (var item in _owned) item.Dispose();
            _owned.Clear();
        }
    }
}
