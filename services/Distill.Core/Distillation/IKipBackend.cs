using Distill.Core.Data;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>
/// Where a KIP run's kernel arithmetic happens: in this process, or on kernel services.
/// Targets are named by their row indices in the train split; the backend holds the data.
/// </summary>
public interface IKipBackend
{
    /// <summary>Loss and gradients for the whole target batch (summed over shards if the backend splits it).</summary>
    Task<KipShardResult> StepAsync(Tensor supportImages, Tensor supportLabels, long[] targetIndices, bool wantLabelGradient,
        CancellationToken cancellation);

    /// <summary>KRR accuracy and MSE on the whole test split; test rows scored so far go to <paramref name="progress"/>.</summary>
    Task<EvaluationResult> EvaluateAsync(Tensor supportImages, Tensor supportLabels, Action<RowsDone>? progress, CancellationToken cancellation);

    /// <summary>Label Solve labels over the whole train split; train rows summed so far go to <paramref name="progress"/>.</summary>
    Task<Tensor> SolveLabelsAsync(Tensor supportImages, Action<RowsDone>? progress, CancellationToken cancellation);
}

/// <summary>The backend that computes in this process, synchronously.</summary>
public sealed class InProcessKipBackend(PreparedDataset data, KernelSpec kernel, double regularization, int blockRows = GramMatrix.DefaultBlockRows) : IKipBackend
{
    private readonly IKernel _kernel = kernel.Create();

    public Task<KipShardResult> StepAsync(Tensor supportImages, Tensor supportLabels, long[] targetIndices, bool wantLabelGradient,
        CancellationToken cancellation)
    {
        using var scope = NewDisposeScope();
        var index = tensor(targetIndices, dtype: ScalarType.Int64, device: data.TrainImages.device);
        var result = new KipObjective(_kernel, regularization).ShardStep(supportImages, supportLabels,
            data.TrainImages.index_select(0, index), data.TrainTargets.index_select(0, index), targetIndices.Length, wantLabelGradient);
        result.Reduction.MoveToOuterDisposeScope();
        result.SupportGradient.MoveToOuterDisposeScope();
        result.LabelGradient?.MoveToOuterDisposeScope();
        return Task.FromResult(result);
    }

    public Task<EvaluationResult> EvaluateAsync(Tensor supportImages, Tensor supportLabels, Action<RowsDone>? progress, CancellationToken cancellation) =>
        Task.FromResult(KrrEvaluator.Evaluate(_kernel, supportImages, supportLabels, data.TestImages, data.TestLabels, data.TestTargets,
            regularization, blockRows, progress, cancellation));

    public Task<Tensor> SolveLabelsAsync(Tensor supportImages, Action<RowsDone>? progress, CancellationToken cancellation) =>
        Task.FromResult(LabelSolver.Solve(_kernel, supportImages, data.TrainImages, data.TrainTargets, regularization, blockRows: blockRows,
            progress: progress, cancellation: cancellation).Labels);
}
