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
/// The KIP outer loop on one process: owns the support set, its labels and the Adam
/// state, samples a class-balanced target batch per step and follows the gradient of
/// <see cref="KipObjective"/>. Deterministic for a given seed, and resumable from
/// <see cref="KipState"/> with bit-identical continuation.
/// </summary>
public sealed class KipDistiller : IDisposable
{
    private readonly PreparedDataset _data;
    private readonly TargetSampler _sampler;
    private readonly KipObjective _objective;
    private readonly AdamOptimizer _imageOptimizer;
    private readonly AdamOptimizer? _labelOptimizer;

    public KipDistiller(PreparedDataset data, KipOptions options, KipState? resumeFrom = null)
    {
        Options = options.Validate();
        _data = data;
        Kernel = options.Kernel.Create();
        _objective = new KipObjective(Kernel, options.Regularization);
        _sampler = new TargetSampler(data.TrainLabels, data.ClassCount, options.Seed);

        if (resumeFrom is null)
        {
            (SupportImages, SupportClasses) = InitialSupport(data, options);
            SupportLabels = CenteredOneHot.Encode(SupportClasses, data.ClassCount);
            _imageOptimizer = new AdamOptimizer(options.LearningRate, SupportImages);
            _labelOptimizer = options.LearnLabels ? new AdamOptimizer(options.LearningRate, SupportLabels) : null;
            if (options.Method == DistillationMethod.LabelSolve)
                SolveLabels();
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
    public IKernel Kernel { get; }
    /// <summary>Support images as preprocessed feature rows, n_s x d float64.</summary>
    public Tensor SupportImages { get; }
    /// <summary>Support labels, n_s x C float64 (centred one-hot at the start).</summary>
    public Tensor SupportLabels { get; }
    /// <summary>The class each support image was drawn for; fixes its row in image grids.</summary>
    public int[] SupportClasses { get; }
    /// <summary>Completed optimisation steps.</summary>
    public long Step { get; private set; }

    public KipStepReport TakeStep()
    {
        if (Options.Method != DistillationMethod.Kip)
            throw new InvalidOperationException("label solve runs have no optimisation steps");
        var watch = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var indices = tensor(_sampler.Sample(Options.TargetBatch, Step), dtype: ScalarType.Int64);
        var targetImages = _data.TrainImages.index_select(0, indices);
        var targetLabels = _data.TrainTargets.index_select(0, indices);
        using var result = _objective.ShardStep(SupportImages, SupportLabels, targetImages, targetLabels,
            targetImages.shape[0], wantLabelGradient: _labelOptimizer is not null);
        if (!double.IsFinite(result.Loss))
            throw new DivergenceException(Step + 1, $"loss became {result.Loss} at step {Step + 1}");
        _imageOptimizer.Step(SupportImages, result.SupportGradient);
        if (_labelOptimizer is not null)
            _labelOptimizer.Step(SupportLabels, result.LabelGradient!);
        Step++;
        return new KipStepReport(Step, result.Loss, result.Method, watch.Elapsed);
    }

    public EvaluationResult Evaluate() =>
        KrrEvaluator.Evaluate(Kernel, SupportImages, SupportLabels, _data.TestImages, _data.TestLabels, _data.TestTargets,
            Options.Regularization, Options.BlockRows);

    /// <summary>Replaces the support labels by the Label Solve labels over the whole train split.</summary>
    public SolveMethod SolveLabels()
    {
        var (labels, method) = LabelSolver.Solve(Kernel, SupportImages, _data.TrainImages, _data.TrainTargets,
            Options.Regularization, blockRows: Options.BlockRows);
        using (labels) SupportLabels.copy_(labels);
        return method;
    }

    /// <summary>A copy of the state that, with the same data and options, continues this run exactly.</summary>
    public KipState CaptureState() => new(
        Step, SupportImages.clone(), SupportLabels.clone(), SupportClasses.ToArray(),
        (_imageOptimizer.FirstMoment.clone(), _imageOptimizer.SecondMoment.clone()),
        _labelOptimizer is null ? null : (_labelOptimizer.FirstMoment.clone(), _labelOptimizer.SecondMoment.clone()),
        Options, _data.Name, _data.TrainImages.shape[0]);

    private static (Tensor Images, int[] Classes) InitialSupport(PreparedDataset data, KipOptions options)
    {
        var classes = Enumerable.Range(0, data.ClassCount).SelectMany(c => Enumerable.Repeat(c, options.SupportPerClass)).ToArray();
        if (options.Initialization == SupportInitialization.Noise)
        {
            var generator = new Generator((ulong)TargetSampler.StreamSeed(options.Seed, -1, 1));
            return (randn(classes.Length, data.TrainImages.shape[1], dtype: ScalarType.Float64, generator: generator), classes);
        }

        var sampler = new TargetSampler(data.TrainLabels, data.ClassCount, options.Seed);
        var indices = sampler.Sample(classes.Length, step: -1, stream: 1);
        var drawn = indices.Select(i => data.TrainLabels[i]).ToArray();
        for (int c = 0; c < data.ClassCount; c++)
            if (drawn.Count(x => x == c) < options.SupportPerClass)
                throw new ArgumentException($"support_per_class: class {c} has only {drawn.Count(x => x == c)} training images, {options.SupportPerClass} requested");
        return (data.TrainImages.index_select(0, tensor(indices, dtype: ScalarType.Int64)), drawn);
    }

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
