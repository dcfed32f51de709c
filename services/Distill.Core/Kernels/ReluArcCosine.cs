using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// The ReLU step of the kernel recursion (kernel-math.md section 1): for covariances
/// k = Sigma(x, x'), q = Sigma(x, x), q' = Sigma(x', x') it returns
/// E[relu(u) relu(v)] = (s + (pi - theta) k) / 2pi and E[relu'(u) relu'(v)] = (pi - theta) / 2pi,
/// with s = sqrt(q q' - k^2) and theta = atan2(s, k).
/// </summary>
internal static class ReluArcCosine
{
    // theta = 0 (x = x') is where d sqrt and d acos blow up. The value of s uses the
    // exact sqrt(max(s^2, 0)); its gradient is taken through sqrt(max(s^2, floor)) with a
    // floor of 1e-12 q q' (theta ~ 1e-6), above float64 round-off of s^2, so gradients stay
    // finite for duplicate or nearly equal inputs without biasing the kernel's value.
    private const double RelativeFloor = 1e-12;
    private const double AbsoluteFloor = 1e-30;

    public static (Tensor Expectation, Tensor Derivative) Apply(Tensor k, Tensor q1, Tensor q2, Tensor? diagonal)
    {
        // On the diagonal of K(x, x) the closed forms q/2 and 1/2 are used; the general
        // branch there sees k = 0, a point where every derivative is finite, so the
        // masked-out branch cannot leak 0 * inf = NaN into the gradient.
        var kSafe = diagonal is null ? k : where(diagonal, zeros_like(k), k);
        var qq = q1.unsqueeze(1).mul(q2.unsqueeze(0));
        var floor = qq.mul(RelativeFloor).add_(AbsoluteFloor);
        var s2 = qq.sub(kSafe.square());
        var sForGradient = maximum(s2, floor).sqrt();
        var s = sForGradient.add(s2.detach().clamp_min(0).sqrt().sub(sForGradient.detach()));
        var theta = atan2(s, kSafe);
        var piMinusTheta = theta.neg().add_(Math.PI);
        var expectation = s.add(piMinusTheta.mul(kSafe)).div_(2 * Math.PI);
        var derivative = piMinusTheta.div(2 * Math.PI);
        if (diagonal is null)
            return (expectation, derivative);

        var halfQ = q1.div(2).unsqueeze(1).expand_as(k);
        return (where(diagonal, halfQ, expectation), where(diagonal, full_like(k, 0.5), derivative));
    }
}
