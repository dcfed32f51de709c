using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Distill.Core.Checkpoints;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Output;
using static TorchSharp.torch;

namespace Distill.Core.Runs;

/// <summary>
/// A whole distillation run in this process: steps, periodic evaluation, atomic
/// checkpoints in the output folder, resume from the latest one, and the final outputs
/// (safetensors, PNG grid, JSON summary).
/// </summary>
public static class LocalRun
{
    public const string CheckpointFile = CheckpointFiles.Latest;
    public const string DistilledFile = "distilled.safetensors";
    public const string GridFile = "distilled.png";
    public const string SummaryFile = "summary.json";
    public const string SnapshotsFolder = "snapshots";

    /// <summary>The run in this thread with the in-process backend (which completes synchronously).</summary>
    public static RunSummary Execute(PreparedDataset data, KipOptions options, string outputDirectory, bool resume,
        Action<RunEvent>? report = null, CancellationToken cancellation = default) =>
        ExecuteAsync(data, options, outputDirectory, resume, backend: null, report, cancellation).GetAwaiter().GetResult();

    /// <summary>The run with any backend: the same loop serves the command line and the distiller service.</summary>
    public static async Task<RunSummary> ExecuteAsync(PreparedDataset data, KipOptions options, string outputDirectory, bool resume,
        IKipBackend? backend, Action<RunEvent>? report, CancellationToken cancellation, SnapshotPolicy? snapshots = null)
    {
        options.Validate();
        Directory.CreateDirectory(outputDirectory);
        var checkpointPath = Path.Combine(outputDirectory, CheckpointFile);
        // Writes a killed process left half done are no one's latest file: drop them.
        AtomicFile.DeleteLeftovers(outputDirectory);
        if (snapshots is not null) AtomicFile.DeleteLeftovers(snapshots.Folder);
        KipState? state = resume
            ? CheckpointFiles.LoadNewestGood(outputDirectory, (file, reason) => report?.Invoke(new CheckpointRejected(file, reason)))
            : null;
        using var distiller = new KipDistiller(data, options, state, backend);
        state?.Dispose();
        report?.Invoke(new RunStarted(distiller.Step, options.Steps, state is not null));
        // The state at the start, so that a viewer can show the change since then.
        if (snapshots is not null && distiller.Step == 0)
            WriteSnapshot(distiller.SupportImages, distiller.SupportLabels, distiller.SupportClasses, 0, options, data, snapshots);
        if (options.Method == DistillationMethod.LabelSolve)
            await distiller.SolveLabelsAsync(PhaseProgress.Reporter(RunPhase.LabelSolve, distiller.Step, report), cancellation);

        var evaluations = new List<EvaluationPoint>();
        EvaluationResult? latest = null;
        async Task<EvaluationResult> Evaluate()
        {
            latest = await distiller.EvaluateAsync(PhaseProgress.Reporter(RunPhase.Evaluation, distiller.Step, report), cancellation);
            evaluations.Add(new EvaluationPoint(distiller.Step, latest.Accuracy, latest.Mse));
            report?.Invoke(new EvaluationCompleted(distiller.Step, latest));
            return latest;
        }
        void Checkpoint()
        {
            using var snapshot = distiller.CaptureState();
            CheckpointFiles.Save(snapshot, outputDirectory);
            var snapshotPath = snapshots is null ? null
                : WriteSnapshot(distiller.SupportImages, distiller.SupportLabels, distiller.SupportClasses, distiller.Step, options, data, snapshots);
            report?.Invoke(new CheckpointWritten(distiller.Step, checkpointPath, snapshotPath));
        }

        if (options.EvaluateEvery > 0 || distiller.Step >= options.Steps) await Evaluate();
        var training = new Stopwatch();
        long stepsThisSession = 0;
        double? lastLoss = null;
        try
        {
            while (options.Method == DistillationMethod.Kip && distiller.Step < options.Steps)
            {
                cancellation.ThrowIfCancellationRequested();
                training.Start();
                var step = await distiller.TakeStepAsync(cancellation);
                training.Stop();
                stepsThisSession++;
                lastLoss = step.Loss;
                report?.Invoke(new StepCompleted(step.Step, options.Steps, step.Loss, stepsThisSession / training.Elapsed.TotalSeconds));
                if (options.EvaluateEvery > 0 && step.Step % options.EvaluateEvery == 0 && step.Step < options.Steps) await Evaluate();
                if (options.CheckpointEvery > 0 && step.Step % options.CheckpointEvery == 0) Checkpoint();
            }
        }
        catch (OperationCanceledException)
        {
            // Keep every completed step: the next resume continues from here.
            if (options.Method == DistillationMethod.Kip) Checkpoint();
            throw;
        }

        if (options.Method == DistillationMethod.Kip && (options.CheckpointEvery == 0 || distiller.Step % options.CheckpointEvery != 0 || stepsThisSession == 0))
            Checkpoint();
        // A Label Solve, or a finished run resumed, was evaluated at this step already: an exact evaluation can take many minutes.
        var final = latest is not null && evaluations[^1].Step == distiller.Step ? latest : await Evaluate();

        var outputs = WriteOutputs(distiller.SupportImages, distiller.SupportLabels, distiller.SupportClasses, distiller.Step, options, data, outputDirectory);
        var summary = new RunSummary
        {
            Dataset = data.Name,
            Method = options.Method == DistillationMethod.Kip ? "kip" : "ls",
            Kernel = options.Kernel.ToString(),
            SupportSize = (int)distiller.SupportImages.shape[0],
            Steps = distiller.Step,
            TrainingSeconds = training.Elapsed.TotalSeconds,
            StepsPerSecond = stepsThisSession == 0 ? 0 : stepsThisSession / training.Elapsed.TotalSeconds,
            FinalLoss = lastLoss,
            TestAccuracy = final.Accuracy,
            TestMse = final.Mse,
            PeakRssMb = PeakResidentMegabytes(),
            Evaluations = evaluations,
            Outputs = outputs,
        };
        AtomicFile.WriteAllText(Path.Combine(outputDirectory, SummaryFile),
            JsonSerializer.Serialize(summary, new JsonSerializerOptions(KipState.Json) { WriteIndented = true }));
        report?.Invoke(new RunFinished(summary));
        return summary;
    }

    /// <summary>distilled.safetensors (preprocessed and pixel-space images, labels, settings) and the PNG grid.</summary>
    public static IReadOnlyDictionary<string, string> WriteOutputs(Tensor supportImages, Tensor supportLabels, int[] supportClasses,
        long step, KipOptions options, PreparedDataset data, string outputDirectory)
    {
        var distilledPath = Path.Combine(outputDirectory, DistilledFile);
        var pixels = WriteDistilledSet(distilledPath, supportImages, supportLabels, supportClasses, step, options, data);
        var p = data.Preprocessor;
        var gridPath = Path.Combine(outputDirectory, GridFile);
        ImageGrid.WritePng(gridPath, pixels, supportClasses, p.Channels, p.Height, p.Width, data.ClassCount,
            scale: Math.Max(1, 64 / Math.Max(p.Height, p.Width)));
        return new Dictionary<string, string>
        {
            ["distilled"] = distilledPath,
            ["grid"] = gridPath,
            ["checkpoint"] = Path.Combine(outputDirectory, CheckpointFile),
            ["summary"] = Path.Combine(outputDirectory, SummaryFile),
        };
    }

    /// <summary>The file name of the snapshot at a step: step-00000050.safetensors.</summary>
    public static string SnapshotFileName(long step) => $"step-{step.ToString("D8", CultureInfo.InvariantCulture)}.safetensors";

    /// <summary>The steps of the snapshots in a folder, oldest first.</summary>
    public static IReadOnlyList<long> SnapshotSteps(string folder)
    {
        if (!Directory.Exists(folder)) return [];
        var steps = new List<long>();
        foreach (var file in Directory.EnumerateFiles(folder, "step-*.safetensors"))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            if (long.TryParse(name.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var step)) steps.Add(step);
        }
        steps.Sort();
        return steps;
    }

    /// <summary>
    /// The support set at a step as snapshots/step-N.safetensors (the tensors of
    /// distilled.safetensors, written atomically), then the policy's retention applied.
    /// </summary>
    public static string WriteSnapshot(Tensor supportImages, Tensor supportLabels, int[] supportClasses, long step, KipOptions options,
        PreparedDataset data, SnapshotPolicy policy)
    {
        Directory.CreateDirectory(policy.Folder);
        var path = Path.Combine(policy.Folder, SnapshotFileName(step));
        WriteDistilledSet(path, supportImages, supportLabels, supportClasses, step, options, data);
        foreach (var dropped in SnapshotPolicy.Thin(SnapshotSteps(policy.Folder), policy.Retention))
            File.Delete(Path.Combine(policy.Folder, SnapshotFileName(dropped)));
        return path;
    }

    /// <summary>Writes the support set's tensors and settings; returns the pixel-space images.</summary>
    private static float[] WriteDistilledSet(string path, Tensor supportImages, Tensor supportLabels, int[] supportClasses,
        long step, KipOptions options, PreparedDataset data)
    {
        using var scope = NewDisposeScope();
        var p = data.Preprocessor;
        long n = supportImages.shape[0];
        long[] shape = [n, p.Channels, p.Height, p.Width];
        var preprocessed = supportImages.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        var pixels = p.Invert(supportImages).to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        var labels = supportLabels.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();

        var metadata = new Dictionary<string, string>(p.Describe())
        {
            ["distill.kind"] = "distilled-set",
            ["distill.dataset"] = data.Name,
            ["distill.class_names"] = string.Join(",", data.Source.Train.ClassNames),
            ["distill.step"] = step.ToString(CultureInfo.InvariantCulture),
            ["distill.options"] = JsonSerializer.Serialize(options, KipState.Json),
            ["kernel.architecture"] = options.Kernel.Architecture.ToString(),
            ["kernel.kind"] = options.Kernel.Kind.ToString().ToLowerInvariant(),
            ["kernel.depth"] = options.Kernel.Depth.ToString(CultureInfo.InvariantCulture),
            ["kernel.w_std"] = options.Kernel.WStd.ToString("R", CultureInfo.InvariantCulture),
            ["kernel.b_std"] = options.Kernel.BStd.ToString("R", CultureInfo.InvariantCulture),
            ["kernel.regularization"] = options.Regularization.ToString("R", CultureInfo.InvariantCulture),
        };
        SafetensorsFile.Write(path, new Dictionary<string, SafetensorsTensor>
        {
            ["images"] = SafetensorsTensor.FromFloats(preprocessed, shape),
            ["images_pixels"] = SafetensorsTensor.FromFloats(pixels, shape),
            ["labels"] = SafetensorsTensor.FromFloats(labels, n, data.ClassCount),
            ["classes"] = SafetensorsTensor.FromLongs(supportClasses.Select(c => (long)c).ToArray(), n),
        }, metadata);
        return pixels;
    }

    /// <summary>Peak resident set size of this process (VmHWM), in MiB.</summary>
    public static double PeakResidentMegabytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { }
        return Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024);
    }
}
