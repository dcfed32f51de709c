using Distill.Core.Errors;
using System.Diagnostics;
using Distill.Core.Data;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Regression;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>What one optimisation step did.</summary>
public sealed record KipStepReport(long Step, double Loss, SolveMethod Method, TimeSpan Elapsed);

/// <summary>
/// The KIP outer loop: owns the support set, its labels and the Adam state, samples a
/// class-balanced target batch per step and follows the gradient of <see cref="KipObjective"/>,
/// computed by an <see cref="IKipBackend"/> (this process by default, or kernel services).
/// Deterministic for a given seed, and resumable from <see cref="KipState"/> with
/// bit-identical continuation.
/// </summary>
public sealed class KipDistiller : IDisposable
{
    private readonly PreparedDataset _data;
    private readonly TargetSampler _sampler;
    private readonly IKipBackend _backend;
    private readonly AdamOptimizer _imageOptimizer;
    private readonly AdamOptimizer? _labelOptimizer;

    public KipDistiller(PreparedDataset data, KipOptions options, KipState? resumeFrom = null, IKipBackend? backend = null)
    {
        Options = options.Validate();
        _data = data;
        _backend = backend ?? new InProcessKipBackend(data, options.Kernel, options.Regularization, options.BlockRows);
        _sampler = new TargetSampler(data.TrainLabels, data.ClassCount, options.Seed);

        if (resumeFrom is null)
        {
            (SupportImages, SupportClasses) = InitialSupport.Draw(data, options.SupportPerClass, options.Initialization, options.Seed);
            SupportLabels = CenteredOneHot.Encode(SupportClasses, data.ClassCount);
            _imageOptimizer = new AdamOptimizer(options.LearningRate, SupportImages);
            _labelOptimizer = options.LearnLabels ? new AdamOptimizer(options.LearningRate, SupportLabels) : null;
        }
        else
        {
            resumeFrom.CheckCompatible(data, options);
            SupportImages = resumeFrom.SupportImages.clone();
            SupportLabels = resumeFrom.SupportLabels.clone();
            SupportClasses = resumeFrom.SupportClasses.ToArray();
            Step = resumeFrom.Step;
            _imageOptimizer = new AdamOptimizer(options.LearningRate, resumeFrom.ImageMoments.First.clone(), resumeFrom.ImageMoments.Second.clone(), resumeFrom.Step);
            _labelOptimizer = resumeFrom.LabelMoments is { } moments
                ? new AdamOptimizer(options.LearningRate, moments.First.clone(), moments.Second.clone(), resumeFrom.Step)
                : null;
        }
    }

    public KipOptions Options { get; }
    /// <summary>Support images as preprocessed feature rows, n_s x d float64.</summary>
    public Tensor SupportImages { get; }
    /// <summary>Support labels, n_s x C float64 (centred one-hot at the start).</summary>
    public Tensor SupportLabels { get; }
    /// <summary>The class each support image was drawn for; fixes its row in image grids.</summary>
    public int[] SupportClasses { get; }
    /// <summary>Completed optimisation steps.</summary>
    public long Step { get; private set; }

    /// <summary>One step in this thread (for in-process backends, which complete synchronously).</summary>
    public KipStepReport TakeStep() => TakeStepAsync(CancellationToken.None).GetAwaiter().GetResult();

    public async Task<KipStepReport> TakeStepAsync(CancellationToken cancellation)
    {
        if (Options.Method != DistillationMethod.Kip)
            throw new InvalidOperationException("label solve runs have no optimisation steps");
        var watch = Stopwatch.StartNew();
        var indices = _sampler.Sample(Options.TargetBatch, Step);
        using var result = await _backend.StepAsync(SupportImages, SupportLabels, indices, _labelOptimizer is not null, cancellation);
        if (!double.IsFinite(result.Loss) || !IsFinite(result.SupportGradient) || (result.LabelGradient is { } g && !IsFinite(g)))
            throw new DivergenceException(Step + 1, $"the loss or its gradient became {result.Loss} / non-finite at step {Step + 1}");
        _imageOptimizer.Step(SupportImages, result.SupportGradient);
        _labelOptimizer?.Step(SupportLabels, result.LabelGradient!);
        Step++;
        return new KipStepReport(Step, result.Loss, result.Method, watch.Elapsed);
    }

    public EvaluationResult Evaluate() => EvaluateAsync(null, CancellationToken.None).GetAwaiter().GetResult();

    public Task<EvaluationResult> EvaluateAsync(Action<RowsDone>? progress, CancellationToken cancellation) =>
        _backend.EvaluateAsync(SupportImages, SupportLabels, progress, cancellation);

    /// <summary>Replaces the support labels by the Label Solve labels over the whole train split.</summary>
    public async Task SolveLabelsAsync(Action<RowsDone>? progress, CancellationToken cancellation)
    {
        using var labels = await _backend.SolveLabelsAsync(SupportImages, progress, cancellation);
        using (no_grad()) SupportLabels.copy_(labels);
    }

    private static bool IsFinite(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.isfinite().all().item<bool>();
    }

    /// <summary>A copy of the state that, with the same data and options, continues this run exactly.</summary>
    public KipState CaptureState() => new(
        Step, SupportImages.clone(), SupportLabels.clone(), SupportClasses.ToArray(),
        (_imageOptimizer.FirstMoment.clone(), _imageOptimizer.SecondMoment.clone()),
        _labelOptimizer is null ? null : (_labelOptimizer.FirstMoment.clone(), _labelOptimizer.SecondMoment.clone()),
        Options, _data.Name, _data.TrainImages.shape[0]);

    public void Dispose()
    {
        SupportImages.Dispose();
        SupportLabels.Dispose();
        _imageOptimizer.Dispose();
        _labelOptimizer?.Dispose();
    }
}

/// <summary>The loss or an update became NaN or infinite.</summary>
public sealed class DivergenceException(long step, string message) : Exception(message)
{
    public long Step { get; } = step;
}
