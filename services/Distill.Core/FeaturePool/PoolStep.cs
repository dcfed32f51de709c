using Distill.Core.Evaluation;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// One pooled KIP step over a set of target rows: the support as the kernel sees it (n x d,
/// mirror images included), the pool networks the step sampled, and the rows of the target
/// subset this part covers. <see cref="TotalTargets"/> is the whole batch's size, so that the
/// parts' results sum to the batch's.
/// </summary>
public sealed record PoolStepRequest(Tensor SupportImages, Tensor SupportLabels, double? LogScale, int[] Networks, long[] Rows,
    long TotalTargets, bool WantLabelGradient, long Step);

/// <summary>
/// The result of one pooled KIP step over a set of target rows. Every field is a sum over the
/// rows (the loss carries 1 / total targets), so disjoint parts of a batch add up to the batch's.
/// </summary>
public sealed class PoolStepResult : IDisposable
{
    public required double Loss { get; init; }
    /// <summary>Targets the KRR predictor classifies correctly, of <see cref="Count"/>.</summary>
    public required long Correct { get; init; }
    public required long Count { get; init; }
    /// <summary>dL/d(support images), n x d float64, shaped as the request's support.</summary>
    public required Tensor SupportGradient { get; init; }
    public Tensor? LabelGradient { get; init; }
    /// <summary>dL/d(log scale) of the Platt loss; 0 for MSE.</summary>
    public double ScaleGradient { get; init; }

    public void Dispose()
    {
        SupportGradient.Dispose();
        LabelGradient?.Dispose();
    }
}

/// <summary>
/// A pooled step computed from feature products summed over the parts of a pool
/// (<see cref="PooledKernel.StepFromProducts"/>): the cotangents dL/d(sum of support products),
/// n_s x n_s, and dL/d(sum of target products), n_t x n_s, go back to the parts.
/// </summary>
public sealed record PooledProductsStep(double Loss, long Correct, long Count, Tensor SupportCotangent, Tensor TargetCotangent,
    Tensor? LabelGradient, double ScaleGradient) : IDisposable
{
    public void Dispose()
    {
        SupportCotangent.Dispose();
        TargetCotangent.Dispose();
        LabelGradient?.Dispose();
    }
}

/// <summary>Where a feature-pool run's target features live and its steps are computed: this process, or kernel services.</summary>
public interface IFeaturePoolBackend : IDisposable
{
    /// <summary>
    /// Computes (or registers) the features of the target subset, given as train-split rows; a
    /// request's <see cref="PoolStepRequest.Rows"/> are positions in this list. <paramref name="log"/> hears progress,
    /// and <paramref name="networksDone"/> the pool's networks whose features are stored, of all of them.
    /// </summary>
    Task PrepareAsync(IReadOnlyList<long> targetRows, Action<string>? log, Action<RowsDone>? networksDone, CancellationToken cancellation);

    /// <summary>The step's result for the request's rows (summed over parts when the backend splits them).</summary>
    Task<PoolStepResult> StepAsync(PoolStepRequest request, CancellationToken cancellation);

    /// <summary>Bytes of the stored target features, wherever they are.</summary>
    long BufferBytes { get; }
}
