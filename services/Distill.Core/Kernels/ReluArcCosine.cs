using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// The ReLU step of the kernel recursion (kernel-math.md section 1): for covariances
/// k = Sigma(x, x'), q = Sigma(x, x), q' = Sigma(x', x') it gives
/// E[relu(u) relu(v)] = (s + (pi - theta) k) / 2pi and E[relu'(u) relu'(v)] = (pi - theta) / 2pi,
/// with s = sqrt(q q' - k^2) and theta = atan2(s, k), and their analytic derivatives.
/// </summary>
internal sealed class ReluArcCosine
{
    // theta = 0 (x = x') is where d sqrt and d acos blow up. Values use the exact
    // sqrt(max(s^2, 0)); derivatives divide by sqrt(max(s^2, 1e-12 q q')) instead, a floor
    // above float64 round-off of s^2 (theta ~ 1e-6), so gradients stay finite for duplicate
    // or nearly equal inputs without biasing the kernel's value.
    private const double RelativeFloor = 1e-12;
    private const double AbsoluteFloor = 1e-30;

    // Static Scalars are never finalized mid-call (see HeldScalars).
    private static readonly Scalar RelativeFloorScalar = RelativeFloor, AbsoluteFloorScalar = AbsoluteFloor, MinusOne = -1,
        Zero = 0, Two = 2, Half = 0.5, Pi = Math.PI, TwoPi = 2 * Math.PI, FourPi = 4 * Math.PI, InverseTwoPi = 1 / (2 * Math.PI), Tiny = 1e-300;

    public required Tensor K { get; init; }              // input covariance (diagonal zeroed when symmetric)
    public required Tensor Q1 { get; init; }
    public required Tensor Q2 { get; init; }
    public required Tensor S { get; init; }
    public required Tensor SFloored { get; init; }
    public required Tensor Expectation { get; init; }    // Sigma-hat
    public required Tensor Derivative { get; init; }     // Sigma-dot
    public Tensor? OffDiagonal { get; init; }            // 1 off the diagonal, 0 on it; symmetric blocks only

    /// <param name="offDiagonal">for K(x, x): a 0/1 mask, zero on the diagonal, where the closed forms q/2 and 1/2 apply.</param>
    public static ReluArcCosine Apply(Tensor k, Tensor q1, Tensor q2, Tensor? offDiagonal)
    {
        // On the diagonal the general branch sees k = 0, where every derivative is finite,
        // so the masked-out branch cannot leak 0 * inf = NaN into autograd.
        var kSafe = offDiagonal is null ? k : k.mul(offDiagonal);
        var qq = q1.unsqueeze(1).mul(q2.unsqueeze(0));
        var s2 = qq.addcmul(kSafe, kSafe, value: MinusOne);
        var sFloored = maximum(s2, qq.mul(RelativeFloorScalar).add_(AbsoluteFloorScalar, One)).sqrt();
        // Value from the exact s, gradient (under autograd) through the floored one.
        var s = sFloored.add(s2.detach().clamp_min(Zero).sqrt_().sub_(sFloored.detach()), One);
        var piMinusTheta = atan2(s, kSafe).neg().add_(Pi, One);
        var expectation = s.addcmul(piMinusTheta, kSafe, value: One).div_(TwoPi);
        var derivative = piMinusTheta.div(TwoPi);
        if (offDiagonal is not null)
        {
            var diagonal = offDiagonal.logical_not();
            expectation = where(diagonal, q1.div(Two).unsqueeze(1).expand_as(k), expectation);
            derivative = where(diagonal, full_like(k, Half), derivative);
        }
        return new ReluArcCosine
        {
            K = kSafe, Q1 = q1, Q2 = q2, S = s, SFloored = sFloored,
            Expectation = expectation, Derivative = derivative, OffDiagonal = offDiagonal,
        };
    }

    /// <summary>
    /// Pulls cotangents of Sigma-hat and Sigma-dot back to k, q1 and q2:
    /// dSigma-hat/dk = Sigma-dot, dSigma-hat/dq1 = s / (4 pi q1),
    /// dSigma-dot/dk = 1 / (2 pi s), dSigma-dot/dq1 = -k / (4 pi s q1); on a symmetric
    /// block's diagonal only Sigma-hat = q/2 depends on q.
    /// </summary>
    public (Tensor GradK, Tensor GradQ1, Tensor GradQ2) Backward(Tensor gradExpectation, Tensor? gradDerivative)
    {
        var gradK = gradExpectation.mul(Derivative);
        // t = gSigma-hat s - gSigma-dot k / s_floored, so that dq_i = sum_j t_ij / (4 pi q_i).
        var t = gradExpectation.mul(S);
        if (gradDerivative is not null)
        {
            var ratio = gradDerivative.div(SFloored);
            gradK.add_(ratio, alpha: InverseTwoPi);
            t.sub_(ratio.mul_(K));
        }
        Tensor? diagonalGrad = null;
        if (OffDiagonal is not null)
        {
            gradK.mul_(OffDiagonal);
            t.mul_(OffDiagonal);
            diagonalGrad = gradExpectation.diagonal().div(Two);
        }
        // q >= b_std^2 > 0 in practice; the clamp keeps a zero-norm input with b_std = 0 at 0/tiny = 0.
        var gradQ1 = t.sum(1).div_(Q1.clamp_min(Tiny).mul(FourPi));
        var gradQ2 = t.sum(dim: 0).div_(Q2.clamp_min(Tiny).mul(FourPi));
        if (diagonalGrad is not null) gradQ1.add_(diagonalGrad, One);
        return (gradK, gradQ1, gradQ2);
    }
}
