using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

/// <summary>
/// The KIP step written plainly with TorchSharp autograd and nothing from Distill.Core: the
/// yardstick that <see cref="StepBenchmarkCommand"/> times beside the engine's step
/// (bench/pytorch_kip_step.py is the same loop in PyTorch). FC depth-1 NTK with W_std sqrt 2,
/// b_std 0.1 and the ReLU arc-cosine closed forms, float64, ridge reg tr(K_ss)/n_s,
/// 0.5 MSE on centred one-hot targets, labels learned, torch.optim.Adam. Used only for
/// the comparison. With a float32 kernel dtype the Gram blocks are computed in float32 and
/// the solve in float64 (a lower precision than the engine's, for reference only).
/// </summary>
public sealed class MinimalKipLoop : IDisposable
{
    private const double W2 = 2.0, B2 = 0.01, Regularization = 1e-6;

    // Constants held as Scalars for the life of the process: a temporary Scalar handed to
    // native code could be finalized by the GC in the middle of the call.
    private static readonly Scalar Pi = Math.PI, InverseTwoPi = 1 / (2 * Math.PI), W2Scalar = W2, B2Scalar = B2, Half = 0.5,
        CosMin = -1 + 1e-12, CosMax = 1 - 1e-12, RegularizationScalar = Regularization, One = 1;

    private readonly Tensor _train;
    private readonly Tensor _targets;
    private readonly Tensor[] _byClass;
    private readonly int _perClass;
    private readonly Generator _generator;
    private readonly Parameter _images;
    private readonly Parameter _labels;
    private readonly Adam _adam;
    private readonly ScalarType _kernelType;

    /// <param name="train">the pool, n x d float64.</param>
    /// <param name="targets">the pool's centred one-hot labels, n x C float64.</param>
    /// <param name="classOf">the pool's class indices, n int64.</param>
    public MinimalKipLoop(Tensor train, Tensor targets, Tensor classOf, int classes, int targetBatch,
        Tensor supportImages, Tensor supportLabels, double learningRate, long seed,
        ScalarType kernelType = ScalarType.Float64)
    {
        _kernelType = kernelType;
        _train = train;
        _targets = targets;
        _byClass = Enumerable.Range(0, classes).Select(c =>
        {
            using Scalar label = c;
            return classOf.eq(label).nonzero().flatten();
        }).ToArray();
        _perClass = targetBatch / classes;
        _generator = new Generator((ulong)seed);
        _images = new Parameter(supportImages.clone(), requires_grad: true);
        _labels = new Parameter(supportLabels.clone(), requires_grad: true);
        // torch.optim.Adam's defaults as in PyTorch (TorchSharp's own default beta2 is 0.99). The
        // yardstick is the loop as TorchSharp users write it, temporary Scalars in Adam's step included.
#pragma warning disable DIST002
        _adam = optim.Adam([_images, _labels], lr: learningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8);
#pragma warning restore DIST002
    }

    public Tensor SupportImages => _images;

    /// <summary>A class-balanced batch: a random <c>targetBatch / classes</c> of each class.</summary>
    public Tensor SampleIndex()
    {
        using var scope = NewDisposeScope();
        var parts = _byClass.Select(pool => pool.index_select(0, randperm(pool.shape[0], generator: _generator).narrow(0, 0, _perClass))).ToArray();
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>One step on the targets at <paramref name="index"/>; returns the loss before the update.</summary>
    public double Step(Tensor index)
    {
        using var scope = NewDisposeScope();
        var xt = _train.index_select(0, index);
        var yt = _targets.index_select(0, index);
        var ns = _images.shape[0];

        Tensor kss, kts;
        if (_kernelType == ScalarType.Float64)
        {
            kss = Ntk(_images, _images, symmetric: true);
            kts = Ntk(xt, _images, symmetric: false);
        }
        else
        {
            var xs = _images.to_type(_kernelType);
            kss = Ntk(xs, xs, symmetric: true).to_type(ScalarType.Float64);
            kts = Ntk(xt.to_type(_kernelType), xs, symmetric: false).to_type(ScalarType.Float64);
        }
        using Scalar count = ns;
        var ridge = kss.trace().mul(RegularizationScalar).div(count);
        var alpha = linalg.solve(kss.add(eye(ns, dtype: ScalarType.Float64).mul(ridge), One), _labels);
        var loss = kts.matmul(alpha).sub(yt).square().mean().mul(Half);

        _adam.zero_grad();
        loss.backward();
        _adam.step();
        return loss.item<double>();
    }

    /// <summary>
    /// Theta(x1, x2) = W^2 E + b^2 + W^2 D Sigma with Sigma = W^2 x1.x2/d + b^2,
    /// E = |.|(sin theta + (pi - theta) cos theta)/2pi, D = (pi - theta)/2pi. For K(x, x)
    /// the diagonal takes its closed forms E = q/2, D = 1/2 (theta = 0, where acos has no derivative).
    /// </summary>
    private static Tensor Ntk(Tensor x1, Tensor x2, bool symmetric)
    {
        using Scalar inputScale = W2 / x1.shape[1];
        var k = x1.matmul(x2.t()).mul(inputScale).add(B2Scalar, One);
        var q1 = x1.square().sum(1).mul(inputScale).add(B2Scalar, One);
        var q2 = symmetric ? q1 : x2.square().sum(1).mul(inputScale).add(B2Scalar, One);
        var norm = q1.unsqueeze(1).mul(q2.unsqueeze(0)).sqrt();
        var cos = k.div(norm).clamp(CosMin, CosMax);
        var theta = cos.acos();
        var piMinusTheta = theta.neg().add(Pi, One);
        var expectation = norm.mul(theta.sin().add(piMinusTheta.mul(cos), One)).mul(InverseTwoPi);
        var derivative = piMinusTheta.mul(InverseTwoPi);
        if (symmetric)
        {
            var diagonal = eye(k.shape[0], dtype: ScalarType.Bool);
            expectation = where(diagonal, q1.mul(Half).unsqueeze(1).expand_as(k), expectation);
            derivative = where(diagonal, full_like(k, Half), derivative);
        }
        return expectation.mul(W2Scalar).add(B2Scalar, One).add(derivative.mul(k).mul(W2Scalar), One);
    }

    public void Dispose()
    {
        foreach (var pool in _byClass) pool.Dispose();
        _adam.Dispose();
        _images.Dispose();
        _labels.Dispose();
        _generator.Dispose();
    }
}
