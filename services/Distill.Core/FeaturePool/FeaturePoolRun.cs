using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Distill.Core.Checkpoints;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Output;
using Distill.Core.Runs;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>One evaluation of a support set: exact-kernel KRR and KRR under the held-out networks.</summary>
public sealed record PoolEvaluation(double ExactAccuracy, double ExactMse, double HeldOutAccuracy, double HeldOutMse, int TestCount);

/// <summary>A point of the run's curve: the step's loss and, where validated, the held-out validation accuracy (NaN otherwise).</summary>
public sealed record PoolCurvePoint(long Step, double Loss, double Validation);

/// <summary>The JSON summary of a feature-pool run.</summary>
public sealed record FeaturePoolSummary
{
    public required string Dataset { get; init; }
    public required string Mode { get; init; }
    public required FeaturePoolOptions Options { get; init; }
    public required string EvaluationKernel { get; init; }
    public required int SupportSize { get; init; }
    public required long Steps { get; init; }
    public required long ChosenStep { get; init; }
    public required double ChosenValidationAccuracy { get; init; }
    public required double SetupSeconds { get; init; }
    public required double TrainingSeconds { get; init; }
    public required double SecondsPerStep { get; init; }
    public required long BufferBytes { get; init; }
    public required int TestSubset { get; init; }
    public required PoolEvaluation Baseline { get; init; }
    public required PoolEvaluation Final { get; init; }
    public required IReadOnlyList<PoolCurvePoint> Curve { get; init; }
    public required double PeakRssMb { get; init; }
    public required IReadOnlyDictionary<string, string> Outputs { get; init; }
}

/// <summary>How a feature-pool run is computed, checkpointed and reported; the defaults run everything in this process.</summary>
public sealed record FeaturePoolRunSettings
{
    /// <summary>Test images of the exact evaluation: a fixed class-balanced subset of this size (0: the whole split).</summary>
    public int TestSubset { get; init; }
    /// <summary>Continue from the newest good checkpoint in the output folder, when there is one.</summary>
    public bool Resume { get; init; }
    /// <summary>Steps between checkpoints (0: a twentieth of the run); each validation writes one too, and a fresh run one after its baseline.</summary>
    public long CheckpointEvery { get; init; }
    /// <summary>Also score the support under the held-out networks on the test images (baseline and end).</summary>
    public bool HeldOutTest { get; init; } = true;
    /// <summary>Score the initial random real support with the exact kernel too; false leaves its exact accuracy NaN
    /// (at 500 images and 1000 test images, 625,250 image pairs: 25 to 80 minutes on two cores, by the day).</summary>
    public bool ExactBaseline { get; init; } = true;
    /// <summary>Where the pool's target features live and steps are computed (null: this process).</summary>
    public IFeaturePoolBackend? Backend { get; init; }
    /// <summary>The exact kernel's test evaluation of a support (n x d) and labels, with its progress (null: in this process).</summary>
    public Func<Tensor, Tensor, Action<RowsDone>?, CancellationToken, Task<EvaluationResult>>? EvaluateExact { get; init; }
    /// <summary>A snapshot of the support with every checkpoint, and at the start.</summary>
    public SnapshotPolicy? Snapshots { get; init; }
    public Action<RunEvent>? Report { get; init; }
}

/// <summary>
/// A whole feature-pool KIP run: set-up, the baseline (the initial random real support), steps
/// with held-out validation, the best validated step restored, the final evaluation with the
/// exact kernel (on a fixed class-balanced test subset when asked) and the held-out networks,
/// and the outputs of a KIP run (distilled.safetensors, distilled.png, summary.json), with
/// checkpoints to resume from. With mirroring, evaluations and outputs hold the 2n images the
/// kernel sees (<see cref="MirroredSupport"/>). The same loop serves the command line and the
/// distiller service, whose backend shards the pool over kernel services.
/// </summary>
public static class FeaturePoolRun
{
    /// <summary>
    /// Test rows per block of the exact evaluation: each block recomputes the support's own
    /// statistics, and keeps a block's per-pixel variances (a few KiB per image).
    /// </summary>
    public const int ExactBlockRows = 200;

    /// <summary>The run in this process (the in-process backend completes synchronously).</summary>
    public static FeaturePoolSummary Execute(PreparedDataset data, FeaturePoolOptions options, string outputDirectory, int testSubset,
        Action<string> log, CancellationToken cancellation = default, bool resume = false, bool exactBaseline = true) =>
        ExecuteAsync(data, options, outputDirectory,
                new FeaturePoolRunSettings { TestSubset = testSubset, Resume = resume, ExactBaseline = exactBaseline }, log, cancellation)
            .GetAwaiter().GetResult();

    public static async Task<FeaturePoolSummary> ExecuteAsync(PreparedDataset data, FeaturePoolOptions options, string outputDirectory,
        FeaturePoolRunSettings settings, Action<string> log, CancellationToken cancellation = default)
    {
        options.Validate();
        Directory.CreateDirectory(outputDirectory);
        AtomicFile.DeleteLeftovers(outputDirectory);
        if (settings.Snapshots is { } policy) AtomicFile.DeleteLeftovers(policy.Folder);
        var report = settings.Report;
        using var saved = settings.Resume
            ? CheckpointFiles.LoadNewestGood(outputDirectory, FeaturePoolCheckpoint.Load, (file, reason) =>
            {
                log($"checkpoint {file} not usable: {reason}");
                report?.Invoke(new CheckpointRejected(file, reason));
            })
            : null;
        saved?.CheckCompatible(data, options);
        var exact = options.Kernel.Create();
        using var distiller = settings.Backend is null
            ? new FeaturePoolDistiller(data, options, log)
            : await FeaturePoolDistiller.CreateAsync(data, options, settings.Backend, log,
                PhaseProgress.Reporter(RunPhase.FeaturePoolSetup, step: 0, report), cancellation);
        log(string.Create(CultureInfo.InvariantCulture,
            $"set-up {distiller.SetupSeconds:F1} s; feature buffer {distiller.BufferBytes / 1048576.0:F1} MiB; {distiller.TargetCount} targets, {distiller.ValidationCount} validation images"));

        // No dispose scope here: this method awaits, and scopes belong to a thread.
        using var test = TestSet.Of(data, settings.TestSubset, options.Seed);
        var evaluateExact = settings.EvaluateExact ?? ((support, labels, progress, token) =>
            Task.FromResult(KrrEvaluator.Evaluate(exact, support, labels, test.Images, test.Labels, test.Targets, options.Regularization, ExactBlockRows,
                progress, token)));
        // An exact evaluation can take twenty minutes: its progress goes to the log as well as to the run's events.
        void ReportPhase(RunEvent e)
        {
            report?.Invoke(e);
            if (e is PhaseProgress p)
                log(string.Create(CultureInfo.InvariantCulture,
                    $"exact evaluation: {p.Done}/{p.Total} {(p.Phase == RunPhase.SupportGram ? "image pairs of the support Gram" : "test images")} ({p.Elapsed.TotalSeconds:F0} s)"));
        }
        var kipOptions = ToKipOptions(options);

        async Task<PoolEvaluation> Evaluate(string what, long step, bool exactKernel = true)
        {
            var watch = Stopwatch.StartNew();
            var h = settings.HeldOutTest && options.HeldOutNetworks > 0 ? distiller.EvaluateHeldOut(test.Images, test.Targets) : (double.NaN, double.NaN);
            var heldOut = double.IsNaN(h.Item1) ? "" : string.Create(CultureInfo.InvariantCulture, $", held-out {options.HeldOutNetworks} networks {h.Item1:F4}");
            if (!exactKernel)
            {
                log(string.Create(CultureInfo.InvariantCulture, $"{what}: no exact evaluation{heldOut} on {test.Labels.Length} test images"));
                return new PoolEvaluation(double.NaN, double.NaN, h.Item1, h.Item2, test.Labels.Length);
            }
            var (support, labels) = distiller.KernelSupport();
            using (support)
            using (labels)
            {
                var e = await evaluateExact(support, labels, PhaseProgress.Reporter(RunPhase.Evaluation, step, ReportPhase), cancellation);
                log(string.Create(CultureInfo.InvariantCulture,
                    $"{what}: exact {options.Kernel.Architecture} NNGP test_accuracy {e.Accuracy:F4}{heldOut} on {e.Count} test images ({watch.Elapsed.TotalSeconds:F1} s)"));
                report?.Invoke(new EvaluationCompleted(step, e));
                return new PoolEvaluation(e.Accuracy, e.Mse, h.Item1, h.Item2, e.Count);
            }
        }
        string? Snapshot()
        {
            if (settings.Snapshots is null) return null;
            var (images, labels) = distiller.KernelSupport();
            using (images)
            using (labels)
                return LocalRun.WriteSnapshot(images, labels, SupportClasses(distiller), distiller.Step, kipOptions, data, settings.Snapshots);
        }

        PoolEvaluation baseline;
        List<PoolCurvePoint> curve;
        double priorSeconds = 0;
        if (saved is not null)
        {
            distiller.Restore(saved.Tensors, saved.Step, saved.BestStep, saved.BestValidationAccuracy);
            (baseline, curve, priorSeconds) = (saved.Baseline, saved.Curve.ToList(), saved.TrainingSeconds);
            log(string.Create(CultureInfo.InvariantCulture, $"resumed from step {saved.Step} (best validation {saved.BestValidationAccuracy:F4} at step {saved.BestStep})"));
            report?.Invoke(new RunStarted(saved.Step, options.Steps, Resumed: true));
        }
        else
        {
            report?.Invoke(new RunStarted(0, options.Steps, Resumed: false));
            Snapshot();
            baseline = await Evaluate("baseline (initial random real support)", 0, settings.ExactBaseline);
            curve = [];
            if (options.ValidateEvery > 0)
            {
                var v = distiller.Validate();
                log(string.Create(CultureInfo.InvariantCulture, $"step 0 validation {v:F4}"));
                curve.Add(new(0, double.NaN, v));
            }
        }
        var training = Stopwatch.StartNew();
        double TrainingSeconds() => priorSeconds + training.Elapsed.TotalSeconds;
        // Saved with every point of the curve and on cancellation; the pool is recomputed on resume.
        void Checkpoint()
        {
            var state = distiller.Capture();
            using var checkpoint = new FeaturePoolCheckpoint
            {
                Step = distiller.Step, BestStep = distiller.BestStep, BestValidationAccuracy = distiller.BestValidationAccuracy,
                Tensors = state, Baseline = baseline, Curve = curve, TrainingSeconds = TrainingSeconds(),
                Options = options, DatasetName = data.Name, TrainCount = data.TrainImages.shape[0],
            };
            var path = Path.Combine(outputDirectory, CheckpointFiles.Latest);
            checkpoint.Save(path, Path.Combine(outputDirectory, CheckpointFiles.Previous));
            report?.Invoke(new CheckpointWritten(distiller.Step, path, Snapshot()));
        }
        // The baseline's exact evaluation can take an hour: a run that dies before its first periodic checkpoint keeps it.
        if (saved is null) Checkpoint();
        long every = settings.CheckpointEvery > 0 ? settings.CheckpointEvery : Math.Max(1, options.Steps / 20);
        long stepsBefore = distiller.Step;
        try
        {
            while (distiller.Step < options.Steps)
            {
                cancellation.ThrowIfCancellationRequested();
                var stepReport = await distiller.TakeStepAsync(cancellation);
                double stepsPerSecond = (stepReport.Step - stepsBefore) / training.Elapsed.TotalSeconds;
                report?.Invoke(new StepCompleted(stepReport.Step, options.Steps, stepReport.Loss, stepsPerSecond));
                double validation = double.NaN;
                if (options.ValidateEvery > 0 && (stepReport.Step % options.ValidateEvery == 0 || stepReport.Step == options.Steps))
                    validation = distiller.Validate();
                if (stepReport.Step % every == 0 || stepReport.Step == options.Steps || !double.IsNaN(validation))
                {
                    curve.Add(new(stepReport.Step, stepReport.Loss, validation));
                    Checkpoint();
                    var validated = double.IsNaN(validation) ? "" : string.Create(CultureInfo.InvariantCulture,
                        $" validation {validation:F4} (best {distiller.BestValidationAccuracy:F4} at step {distiller.BestStep})");
                    log(string.Create(CultureInfo.InvariantCulture,
                        $"step {stepReport.Step}/{options.Steps} loss {stepReport.Loss:E4} batch_acc {stepReport.TargetAccuracy:F3} {stepsPerSecond:F2} steps/s{validated}"));
                }
            }
        }
        catch (OperationCanceledException)
        {
            Checkpoint();
            log($"interrupted at step {distiller.Step}; checkpoint written");
            throw;
        }
        double trainingSeconds = TrainingSeconds();
        long chosen = options.ValidateEvery > 0 ? distiller.BestStep : distiller.Step;
        distiller.RestoreBest();
        log(options.ValidateEvery > 0
            ? string.Create(CultureInfo.InvariantCulture, $"chosen step {chosen} (held-out validation {distiller.BestValidationAccuracy:F4})")
            : $"no validation: the last step, {chosen}, is kept");
        var final = await Evaluate($"distilled (step {chosen})", chosen);

        // The set the kernel scores: with mirroring, the learned images and their mirror images.
        var (images, labels) = distiller.KernelSupport();
        using var disposeImages = images;
        using var disposeLabels = labels;
        var outputs = LocalRun.WriteOutputs(images, labels, SupportClasses(distiller), chosen, kipOptions, data, outputDirectory);

        var summary = new FeaturePoolSummary
        {
            Dataset = data.Name,
            Mode = options.FreshNetworks ? "fresh-networks" : "feature-pool",
            Options = options,
            EvaluationKernel = exact.Spec.ToString(),
            SupportSize = (int)images.shape[0],
            Steps = distiller.Step,
            ChosenStep = chosen,
            ChosenValidationAccuracy = distiller.BestValidationAccuracy,
            SetupSeconds = distiller.SetupSeconds,
            TrainingSeconds = trainingSeconds,
            SecondsPerStep = distiller.Step == 0 ? 0 : trainingSeconds / distiller.Step,
            BufferBytes = distiller.BufferBytes,
            TestSubset = final.TestCount,
            Baseline = baseline,
            Final = final,
            Curve = curve,
            PeakRssMb = LocalRun.PeakResidentMegabytes(),
            Outputs = outputs,
        };
        var json = new JsonSerializerOptions(FeaturePoolCheckpoint.Json) { WriteIndented = true };
        AtomicFile.WriteAllText(Path.Combine(outputDirectory, LocalRun.SummaryFile), JsonSerializer.Serialize(summary, json));
        return summary;
    }

    /// <summary>The classes of the support as the kernel sees it.</summary>
    private static int[] SupportClasses(FeaturePoolDistiller distiller) =>
        distiller.Options.Mirror ? MirroredSupport.Classes(distiller.SupportClasses) : distiller.SupportClasses;

    /// <summary>The settings written beside a distilled set: a KIP run with the random-feature kernel of one step's networks.</summary>
    private static KipOptions ToKipOptions(FeaturePoolOptions options) => new()
    {
        Kernel = options.Kernel with { RandomFeatures = new RandomFeatureSpec(options.PoolSample, options.Width, options.NetworkSeed) },
        SupportPerClass = options.SupportPerClass, Steps = options.Steps, LearningRate = options.LearningRate,
        TargetBatch = options.TargetBatch, LearnLabels = options.LearnLabels, Initialization = options.Initialization,
        Regularization = options.Regularization, Seed = options.Seed,
    };

    /// <summary>The rows of the fixed class-balanced test subset of the given size, in order (null: the whole split).</summary>
    public static long[]? TestRows(PreparedDataset data, int subset, int seed)
    {
        if (subset <= 0 || subset >= data.TestLabels.Length) return null;
        var rows = new TargetSampler(data.TestLabels, data.ClassCount, seed).Sample(subset, step: -4, stream: 4);
        Array.Sort(rows);
        return rows;
    }

    /// <summary>The test split, or a fixed class-balanced subset of it of the given size (whose tensors it owns).</summary>
    private sealed record TestSet(Tensor Images, int[] Labels, Tensor Targets, bool Owned) : IDisposable
    {
        public static TestSet Of(PreparedDataset data, int subset, int seed)
        {
            if (TestRows(data, subset, seed) is not { } rows)
                return new TestSet(data.TestImages, data.TestLabels, data.TestTargets, Owned: false);
            using var index = tensor(rows, device: data.TestImages.device);
            return new TestSet(data.TestImages.index_select(0, index), rows.Select(i => data.TestLabels[i]).ToArray(),
                data.TestTargets.index_select(0, index), Owned: true);
        }

        public void Dispose()
        {
            if (!Owned) return;
            Images.Dispose();
            Targets.Dispose();
        }
    }
}
