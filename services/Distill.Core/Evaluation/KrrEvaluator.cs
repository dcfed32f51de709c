using Distill.Core.Kernels;
using Distill.Core.Regression;
using static TorchSharp.torch;

namespace Distill.Core.Evaluation;

/// <summary>KRR accuracy (argmax match) and mean squared error on a labelled split.</summary>
public sealed record EvaluationResult(double Accuracy, double Mse, int Count, SolveMethod Method);

/// <summary>
/// Evaluates a support set as a kernel ridge regressor on a whole split, with the same
/// trace-scaled ridge that KIP trains with. The support's Gram matrix and then the split are
/// processed in blocks, each reported to <c>progress</c> and each a point where cancellation
/// takes effect.
/// </summary>
public static class KrrEvaluator
{
    public static EvaluationResult Evaluate(IKernel kernel, Tensor supportImages, Tensor supportLabels,
        Tensor images, int[] labels, Tensor targets, double regularization, int blockRows = GramMatrix.DefaultBlockRows,
        Action<RowsDone>? progress = null, CancellationToken cancellation = default)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var kss = GramMatrix.ComputeSymmetric(kernel, supportImages, progress: progress, cancellation: cancellation);
        var (alpha, method) = KernelRidgeRegression.Fit(kss, supportLabels, regularization);
        long correct = 0;
        double squaredError = 0;
        var n = images.shape[0];
        for (long start = 0; start < n; start += blockRows)
        {
            cancellation.ThrowIfCancellationRequested();
            using var blockScope = NewDisposeScope();
            var length = Math.Min(blockRows, n - start);
            var predictions = kernel.Compute(images.narrow(0, start, length), supportImages).matmul(alpha);
            squaredError += predictions.sub(targets.narrow(0, start, length)).square().sum().item<double>();
            var predicted = predictions.argmax(1).cpu().data<long>().ToArray();
            for (int i = 0; i < predicted.Length; i++)
                if (predicted[i] == labels[start + i]) correct++;
            progress?.Invoke(new RowsDone(start + length, n));
        }
        return new EvaluationResult((double)correct / n, squaredError / (n * targets.shape[1]), (int)n, method);
    }
}
