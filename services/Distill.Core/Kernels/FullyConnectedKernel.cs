using TorchSharp;
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

    public Tensor Compute(Tensor x1, Tensor x2) => Evaluate(x1, x2, symmetric: false);

    public Tensor ComputeSymmetric(Tensor x) => Evaluate(x, x, symmetric: true);

    private Tensor Evaluate(Tensor x1, Tensor x2, bool symmetric)
    {
        CheckOperands(x1, x2);
        using var scope = NewDisposeScope();
        double d = x1.shape[1];
        var k = x1.matmul(x2.t()).div_(d);
        var q1 = x1.square().sum(1).div_(d);
        var q2 = symmetric ? q1 : x2.square().sum(1).div_(d);
        var diagonal = symmetric ? eye(x1.shape[0], dtype: ScalarType.Bool, device: x1.device) : null;

        // First Dense layer: Sigma^1 = W^2 Sigma^0 + b^2 and Theta^1 = Sigma^1.
        k = k.mul(_w2).add(_b2);
        q1 = q1.mul(_w2).add(_b2);
        q2 = symmetric ? q1 : q2.mul(_w2).add(_b2);
        var ntk = k;

        for (int layer = 0; layer < Spec.Depth; layer++)
        {
            var (expectation, derivative) = ReluArcCosine.Apply(k, q1, q2, diagonal);
            var next = expectation.mul(_w2).add(_b2);
            if (Spec.Kind == KernelKind.Ntk)
                ntk = next.add(derivative.mul(ntk).mul(_w2));
            k = next;
            // Self-covariances through ReLU are halved exactly: E[relu(u)^2] = q/2.
            q1 = q1.mul(_w2 / 2).add(_b2);
            q2 = symmetric ? q1 : q2.mul(_w2 / 2).add(_b2);
        }

        var result = Spec.Kind == KernelKind.Ntk ? ntk : k;
        return result.MoveToOuterDisposeScope();
    }

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
}
