using Distill.Core.Kernels;
using Distill.Core.Regression;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
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
        using var products = Products(a, b);
        return FromProducts(spec, products, a.Count, a[0].shape[1]);
    }

    /// <summary>sum_m a_m b_m^T over the networks, float64: the unscaled sum behind <see cref="Gram"/>, which parts of a pool add up.</summary>
    public static Tensor Products(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b)
    {
        if (a.Count == 0 || a.Count != b.Count)
            throw new ArgumentException($"features of {a.Count} and {b.Count} networks: need the same, positive number");
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        for (int m = 0; m < a.Count; m++)
        {
            var product = a[m].matmul(b[m].t());
            sum = sum is null ? product : sum.add_(product, One);
        }
        return sum!.to_type(ScalarType.Float64).MoveToOuterDisposeScope();
    }

    /// <summary>K from the products of <paramref name="networks"/> networks with <paramref name="featureCount"/> features each.</summary>
    public static Tensor FromProducts(KernelSpec spec, Tensor products, int networks, long featureCount)
    {
        using Scalar scale = spec.WStd * spec.WStd / ((double)networks * featureCount), bias = spec.BStd * spec.BStd;
        using var scaled = products.mul(scale);
        return scaled.add(bias, One);
    }

    /// <summary>
    /// The KIP loss of support features (with their graph) against target features: with
    /// A = K_ss + lambda I (lambda = reg tr(K_ss)/n_s, symmetrised) and f = K_ts A^-1 Y_s,
    /// MSE 0.5 |f - Y_t|^2 / (n_t C), or Platt cross-entropy(e^kappa f, classes) / n_t with
    /// kappa = <paramref name="logScale"/>. n_t is <paramref name="totalTargets"/> (0: these targets'
    /// count), so that parts of a batch sum to the batch's loss. Returns the 0-d loss and how many
    /// targets f classifies correctly.
    /// </summary>
    public static (Tensor Loss, long Correct) Loss(KernelSpec spec, IReadOnlyList<Tensor> supportFeatures, IReadOnlyList<Tensor> targetFeatures,
        Tensor supportLabels, Tensor targetTargets, PoolLoss loss, Tensor? logScale, double regularization, long totalTargets = 0)
    {
        using var scope = NewDisposeScope();
        var (value, correct) = LossFromGrams(Gram(spec, supportFeatures, supportFeatures), Gram(spec, targetFeatures, supportFeatures),
            supportLabels, targetTargets, loss, logScale, regularization, totalTargets);
        return (value.MoveToOuterDisposeScope(), correct);
    }

    /// <summary><see cref="Loss"/> from the Grams K_ss (symmetrised here) and K_ts, with whatever graph they carry.</summary>
    public static (Tensor Loss, long Correct) LossFromGrams(Tensor kss, Tensor kts, Tensor supportLabels, Tensor targetTargets, PoolLoss loss,
        Tensor? logScale, double regularization, long totalTargets = 0)
    {
        using var scope = NewDisposeScope();
        using Scalar half = 0.5;
        kss = kss.add(kss.t(), One).mul(half);
        var n = kss.shape[0];
        var ridge = KernelRidgeRegression.Ridge(kss, regularization);
        var system = kss.add(eye(n, dtype: ScalarType.Float64, device: kss.device).mul(ridge), One);
        var alpha = linalg.solve(system, supportLabels);
        var predictions = kts.matmul(alpha);
        var classes = targetTargets.argmax(1);
        long correct;
        using (no_grad()) correct = predictions.argmax(1).eq(classes).sum().item<long>();
        long total = totalTargets > 0 ? totalTargets : targetTargets.shape[0];
        using Scalar mseScale = 0.5 / ((double)total * targetTargets.shape[1]), ceScale = 1.0 / total;
        Tensor value = loss switch
        {
            PoolLoss.Mse => predictions.sub(targetTargets).square().sum().mul(mseScale),
            PoolLoss.Platt => nn.functional.cross_entropy(predictions.mul(logScale!.exp()), classes, reduction: nn.Reduction.Sum).mul(ceScale),
            _ => throw new ArgumentOutOfRangeException(nameof(loss)),
        };
        return (value.MoveToOuterDisposeScope(), correct);
    }

    /// <summary>
    /// A pooled step whose networks are split over parts (kernel services each holding some of
    /// the pool): the parts' feature products, summed, give K; this returns the loss, the gradients
    /// for the labels and Platt's log scale, and the cotangents of the two summed products, which
    /// each part turns into its share of the support gradient (<see cref="FeaturePoolShard.ProductsGradient"/>).
    /// </summary>
    public static PooledProductsStep StepFromProducts(KernelSpec spec, int networks, long featureCount, Tensor supportProducts, Tensor targetProducts,
        PoolStepRequest request, Tensor targets, PoolLoss loss, double regularization)
    {
        using var scope = NewDisposeScope();
        var ss = supportProducts.detach().requires_grad_(true);
        var ts = targetProducts.detach().requires_grad_(true);
        var ys = request.SupportLabels.detach().to_type(ScalarType.Float64);
        if (request.WantLabelGradient) ys.requires_grad_(true);
        var logScale = loss == PoolLoss.Platt
            ? tensor(new[] { request.LogScale ?? 0.0 }, dtype: ScalarType.Float64, device: ss.device).requires_grad_(true)
            : null;
        var (value, correct) = LossFromGrams(FromProducts(spec, ss, networks, featureCount), FromProducts(spec, ts, networks, featureCount),
            ys, targets, loss, logScale, regularization, request.TotalTargets);
        var inputs = new List<Tensor> { ss, ts };
        if (request.WantLabelGradient) inputs.Add(ys);
        if (logScale is not null) inputs.Add(logScale);
        var gradients = autograd.grad([value], inputs);
        return new PooledProductsStep(value.item<double>(), correct, targets.shape[0],
            gradients[0].MoveToOuterDisposeScope(), gradients[1].MoveToOuterDisposeScope(),
            request.WantLabelGradient ? gradients[2].MoveToOuterDisposeScope() : null,
            logScale is null ? 0 : gradients[^1].item<double>());
    }

    /// <summary>
    /// The share of a pooled KIP step that some target rows contribute: the support runs through
    /// <paramref name="networks"/> of <paramref name="source"/> with gradient, the targets' features
    /// are given (one [rows, F] tensor per network, in the same order), and the loss's gradients
    /// with respect to the support images, labels (when asked for) and Platt's log scale come back.
    /// </summary>
    public static PoolStepResult Step(RandomFeatureConvKernel source, IReadOnlyList<List<(Tensor Weight, Tensor Bias)>> networks, PoolStepRequest request,
        IReadOnlyList<Tensor> targetFeatures, Tensor targets, PoolLoss loss, double regularization, ScalarType featureType)
    {
        using var scope = NewDisposeScope();
        var xs = request.SupportImages.detach().to_type(ScalarType.Float64).requires_grad_(true);
        var ys = request.SupportLabels.detach().to_type(ScalarType.Float64);
        if (request.WantLabelGradient) ys.requires_grad_(true);
        var logScale = loss == PoolLoss.Platt
            ? tensor(new[] { request.LogScale ?? 0.0 }, dtype: ScalarType.Float64, device: xs.device).requires_grad_(true)
            : null;
        var x = xs.to_type(featureType);
        var supportFeatures = networks.Select(n => source.NetworkFeatures(n, x)).ToList();
        var (value, correct) = Loss(source.Spec, supportFeatures, targetFeatures, ys, targets, loss, logScale, regularization, request.TotalTargets);
        var inputs = new List<Tensor> { xs };
        if (request.WantLabelGradient) inputs.Add(ys);
        if (logScale is not null) inputs.Add(logScale);
        var gradients = autograd.grad([value], inputs);
        return new PoolStepResult
        {
            Loss = value.item<double>(),
            Correct = correct,
            Count = targets.shape[0],
            SupportGradient = gradients[0].MoveToOuterDisposeScope(),
            LabelGradient = request.WantLabelGradient ? gradients[1].MoveToOuterDisposeScope() : null,
            ScaleGradient = logScale is null ? 0 : gradients[^1].item<double>(),
        };
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
