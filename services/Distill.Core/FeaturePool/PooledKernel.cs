using Distill.Core.Kernels;
using Distill.Core.Regression;
using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// The random-feature kernel of a set of k networks from their features (kernel-math.md section 5):
/// K(x, x') = W_std^2 / (k F) sum_m phi_m(x) . phi_m(x') + b_std^2, the estimate
/// <see cref="RandomFeatureConvKernel"/> gives for the same networks, and the KIP loss on it.
/// Everything is differentiable (autograd); Grams and solves are float64.
/// </summary>
public static class PooledKernel
{
    /// <summary>K between the rows behind <paramref name="a"/> and <paramref name="b"/>, one [n, F] tensor per network in each, float64.</summary>
    public static Tensor Gram(KernelSpec spec, IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b)
    {
        if (a.Count == 0 || a.Count != b.Count)
            throw new ArgumentException($"features of {a.Count} and {b.Count} networks: need the same, positive number");
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        for (int m = 0; m < a.Count; m++)
        {
            var product = a[m].matmul(b[m].t());
            sum = sum is null ? product : sum.add_(product);
        }
        long featureCount = a[0].shape[1];
        using Scalar scale = spec.WStd * spec.WStd / ((double)a.Count * featureCount), bias = spec.BStd * spec.BStd;
        return sum!.to_type(ScalarType.Float64).mul(scale).add(bias).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The KIP loss of support features (with their graph) against target features: with
    /// A = K_ss + lambda I (lambda = reg tr(K_ss)/n_s, symmetrised) and f = K_ts A^-1 Y_s,
    /// MSE 0.5 |f - Y_t|^2 / (n_t C), or Platt cross-entropy(e^kappa f, classes) with
    /// kappa = <paramref name="logScale"/>. Returns the 0-d loss and f's accuracy on the targets.
    /// </summary>
    public static (Tensor Loss, double Accuracy) Loss(KernelSpec spec, IReadOnlyList<Tensor> supportFeatures, IReadOnlyList<Tensor> targetFeatures,
        Tensor supportLabels, Tensor targetTargets, PoolLoss loss, Tensor? logScale, double regularization)
    {
        using var scope = NewDisposeScope();
        var kss = Gram(spec, supportFeatures, supportFeatures);
        using Scalar half = 0.5;
        kss = kss.add(kss.t()).mul(half);
        var kts = Gram(spec, targetFeatures, supportFeatures);
        var n = kss.shape[0];
        var ridge = KernelRidgeRegression.Ridge(kss, regularization);
        var system = kss.add(eye(n, dtype: ScalarType.Float64, device: kss.device).mul(ridge));
        var alpha = linalg.solve(system, supportLabels);
        var predictions = kts.matmul(alpha);
        var classes = targetTargets.argmax(1);
        double accuracy;
        using (no_grad()) accuracy = predictions.argmax(1).eq(classes).to_type(ScalarType.Float64).mean().item<double>();
        Tensor value = loss switch
        {
            PoolLoss.Mse => predictions.sub(targetTargets).square().mean().mul(half),
            PoolLoss.Platt => nn.functional.cross_entropy(predictions.mul(logScale!.exp()), classes),
            _ => throw new ArgumentOutOfRangeException(nameof(loss)),
        };
        return (value.MoveToOuterDisposeScope(), accuracy);
    }

    /// <summary>
    /// KRR accuracy and MSE of a support set on images whose per-network features <paramref name="queryFeatures"/>
    /// gives, block by block ([rows, F] for network m of block b), with the trace-scaled ridge.
    /// </summary>
    public static (double Accuracy, double Mse) Evaluate(KernelSpec spec, IReadOnlyList<Tensor> supportFeatures, Tensor supportLabels,
        long count, int blockRows, Func<long, long, IReadOnlyList<Tensor>> queryFeatures, Tensor targets, double regularization)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var kss = Gram(spec, supportFeatures, supportFeatures);
        var (alpha, _) = KernelRidgeRegression.Fit(kss, supportLabels, regularization);
        long correct = 0;
        double squaredError = 0;
        for (long start = 0; start < count; start += blockRows)
        {
            using var blockScope = NewDisposeScope();
            long length = Math.Min(blockRows, count - start);
            var predictions = Gram(spec, queryFeatures(start, length), supportFeatures).matmul(alpha);
            var block = targets.narrow(0, start, length);
            squaredError += predictions.sub(block).square().sum().item<double>();
            correct += predictions.argmax(1).eq(block.argmax(1)).sum().item<long>();
        }
        return ((double)correct / count, squaredError / (count * targets.shape[1]));
    }
}
