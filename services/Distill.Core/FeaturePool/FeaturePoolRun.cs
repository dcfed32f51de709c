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

/// <summary>
/// A whole feature-pool KIP run: set-up, the baseline (the initial random real support), steps
/// with held-out validation, the best validated step restored, the final evaluation with the
/// exact kernel (on a fixed class-balanced test subset when <paramref name="testSubset"/> is
/// positive) and the held-out networks, and the outputs of a KIP run (distilled.safetensors,
/// distilled.png, summary.json), with checkpoints to resume from. With mirroring, evaluations
/// and outputs hold the 2n images the kernel sees (<see cref="MirroredSupport"/>).
/// </summary>
public static class FeaturePoolRun
{
    /// <summary>
    /// Test rows per block of the exact evaluation: each block recomputes the support's own
    /// statistics, and keeps a block's per-pixel variances (a few KiB per image).
    /// </summary>
    public const int ExactBlockRows = 200;

    /// <param name="resume">Continue from the newest good checkpoint in <paramref name="outputDirectory"/>, when there is one.</param>
    public static FeaturePoolSummary Execute(PreparedDataset data, FeaturePoolOptions options, string outputDirectory, int testSubset,
        Action<string> log, CancellationToken cancellation = default, bool resume = false)
    {
        options.Validate();
        Directory.CreateDirectory(outputDirectory);
        using var saved = resume
            ? CheckpointFiles.LoadNewestGood(outputDirectory, FeaturePoolCheckpoint.Load, (file, reason) => log($"checkpoint {file} not usable: {reason}"))
            : null;
        saved?.CheckCompatible(data, options);
        var exact = options.Kernel.Create();
        using var distiller = new FeaturePoolDistiller(data, options, log);
        log(string.Create(CultureInfo.InvariantCulture,
            $"set-up {distiller.SetupSeconds:F1} s; feature buffer {distiller.BufferBytes / 1048576.0:F1} MiB; {distiller.TargetCount} targets, {distiller.ValidationCount} validation images"));

        using var scope = NewDisposeScope();
        var (testImages, testLabels, testTargets) = TestSplit(data, testSubset, options.Seed);
        int testCount = testLabels.Length;

        PoolEvaluation Evaluate(string what)
        {
            var watch = Stopwatch.StartNew();
            var h = options.HeldOutNetworks > 0 ? distiller.EvaluateHeldOut(testImages, testTargets) : (double.NaN, double.NaN);
            log(string.Create(CultureInfo.InvariantCulture, $"{what}: held-out {options.HeldOutNetworks} networks test_accuracy {h.Item1:F4} on {testCount} test images; exact kernel next"));
            var (support, labels) = distiller.KernelSupport();
            using (support)
            using (labels)
            {
                var e = KrrEvaluator.Evaluate(exact, support, labels, testImages, testLabels, testTargets, options.Regularization, ExactBlockRows);
                log(string.Create(CultureInfo.InvariantCulture,
                    $"{what}: exact {options.Kernel.Architecture} NNGP test_accuracy {e.Accuracy:F4}, held-out {options.HeldOutNetworks} networks {h.Item1:F4} on {testCount} test images ({watch.Elapsed.TotalSeconds:F1} s)"));
                return new PoolEvaluation(e.Accuracy, e.Mse, h.Item1, h.Item2, testCount);
            }
        }

        PoolEvaluation baseline;
        List<PoolCurvePoint> curve;
        double priorSeconds = 0;
        if (saved is not null)
        {
            distiller.Restore(saved.Tensors, saved.Step, saved.BestStep, saved.BestValidationAccuracy);
            (baseline, curve, priorSeconds) = (saved.Baseline, saved.Curve.ToList(), saved.TrainingSeconds);
            log(string.Create(CultureInfo.InvariantCulture, $"resumed from step {saved.Step} (best validation {saved.BestValidationAccuracy:F4} at step {saved.BestStep})"));
        }
        else
        {
            baseline = Evaluate("baseline (initial random real support)");
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
            checkpoint.Save(Path.Combine(outputDirectory, CheckpointFiles.Latest), Path.Combine(outputDirectory, CheckpointFiles.Previous));
        }
        long every = Math.Max(1, options.Steps / 20);
        long stepsBefore = distiller.Step;
        try
        {
            while (distiller.Step < options.Steps)
            {
                cancellation.ThrowIfCancellationRequested();
                var report = distiller.TakeStep();
                double validation = double.NaN;
                if (options.ValidateEvery > 0 && (report.Step % options.ValidateEvery == 0 || report.Step == options.Steps))
                    validation = distiller.Validate();
                if (report.Step % every == 0 || report.Step == options.Steps || !double.IsNaN(validation))
                {
                    curve.Add(new(report.Step, report.Loss, validation));
                    Checkpoint();
                    var validated = double.IsNaN(validation) ? "" : string.Create(CultureInfo.InvariantCulture,
                        $" validation {validation:F4} (best {distiller.BestValidationAccuracy:F4} at step {distiller.BestStep})");
                    log(string.Create(CultureInfo.InvariantCulture,
                        $"step {report.Step}/{options.Steps} loss {report.Loss:E4} batch_acc {report.TargetAccuracy:F3} {(report.Step - stepsBefore) / training.Elapsed.TotalSeconds:F2} steps/s{validated}"));
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
        log(string.Create(CultureInfo.InvariantCulture, $"chosen step {chosen} (held-out validation {distiller.BestValidationAccuracy:F4})"));
        var final = Evaluate($"distilled (step {chosen})");

        var kipOptions = new KipOptions
        {
            Kernel = options.Kernel with { RandomFeatures = new RandomFeatureSpec(options.PoolSample, options.Width, options.NetworkSeed) },
            SupportPerClass = options.SupportPerClass, Steps = options.Steps, LearningRate = options.LearningRate,
            TargetBatch = options.TargetBatch, LearnLabels = options.LearnLabels, Initialization = options.Initialization,
            Regularization = options.Regularization, Seed = options.Seed,
        };
        // The set the kernel scores: with mirroring, the learned images and their mirror images.
        var (images, labels) = distiller.KernelSupport();
        var classes = options.Mirror ? MirroredSupport.Classes(distiller.SupportClasses) : distiller.SupportClasses;
        var outputs = LocalRun.WriteOutputs(images, labels, classes, chosen, kipOptions, data, outputDirectory);
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
            TestSubset = testCount,
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

    /// <summary>The test split, or a fixed class-balanced subset of it of the given size.</summary>
    private static (Tensor Images, int[] Labels, Tensor Targets) TestSplit(PreparedDataset data, int subset, int seed)
    {
        if (subset <= 0 || subset >= data.TestLabels.Length)
            return (data.TestImages, data.TestLabels, data.TestTargets);
        var rows = new TargetSampler(data.TestLabels, data.ClassCount, seed).Sample(subset, step: -4, stream: 4);
        Array.Sort(rows);
        var index = tensor(rows, device: data.TestImages.device);
        return (data.TestImages.index_select(0, index), rows.Select(i => data.TestLabels[i]).ToArray(), data.TestTargets.index_select(0, index));
    }
}
