using System.Diagnostics;
using Distill.Core.Evaluation;

namespace Distill.Core.Runs;

/// <summary>Progress of a run, reported as it happens.</summary>
public abstract record RunEvent;

public sealed record RunStarted(long FromStep, long TotalSteps, bool Resumed) : RunEvent;

public sealed record StepCompleted(long Step, long TotalSteps, double Loss, double StepsPerSecond) : RunEvent;

public sealed record EvaluationCompleted(long Step, EvaluationResult Result) : RunEvent;

/// <summary>
/// The phases that take no steps and can take long: an evaluation on the test split, a Label
/// Solve over the train split, a feature-pool run's set-up on kernel services, and the support's
/// own Gram matrix within an evaluation or a Label Solve.
/// </summary>
public enum RunPhase { Evaluation, LabelSolve, FeaturePoolSetup, SupportGram }

/// <summary>
/// A phase of <see cref="RunPhase"/> under way for the support of <paramref name="Step"/> (0 for a
/// set-up): rows done of the total (networks for a set-up, image pairs for a support Gram), and
/// the time since the evaluation, Label Solve or set-up began.
/// </summary>
public sealed record PhaseProgress(RunPhase Phase, long Step, long Done, long Total, TimeSpan Elapsed) : RunEvent
{
    /// <summary>
    /// Rows done as events for <paramref name="report"/>: one per twentieth of the rows at most, and
    /// the last; the support Gram's pairs, reported as they come, likewise as <see cref="RunPhase.SupportGram"/>.
    /// </summary>
    public static Action<RowsDone>? Reporter(RunPhase phase, long step, Action<RunEvent>? report)
    {
        if (report is null) return null;
        var watch = Stopwatch.StartNew();
        // Twentieths reported so far: of the rows, and of the support Gram's pairs.
        var reported = new long[2];
        return rows =>
        {
            var pass = rows.SupportGram ? 1 : 0;
            var twentieths = rows.Total <= 0 ? 20 : rows.Done * 20 / rows.Total;
            if (twentieths <= reported[pass] && rows.Done < rows.Total) return;
            reported[pass] = twentieths;
            report(new PhaseProgress(rows.SupportGram ? RunPhase.SupportGram : phase, step, rows.Done, rows.Total, watch.Elapsed));
        };
    }
}

/// <summary>A checkpoint, and the snapshot written with it when the run keeps snapshots.</summary>
public sealed record CheckpointWritten(long Step, string Path, string? SnapshotPath = null) : RunEvent;

/// <summary>A checkpoint found unusable at resume (checksum, truncation, format); the one before it is tried next.</summary>
public sealed record CheckpointRejected(string File, string Reason) : RunEvent;

public sealed record RunFinished(RunSummary Summary) : RunEvent;

/// <summary>One point of the accuracy curve.</summary>
public sealed record EvaluationPoint(long Step, double Accuracy, double Mse);

/// <summary>The JSON summary of a finished run.</summary>
public sealed record RunSummary
{
    public required string Dataset { get; init; }
    public required string Method { get; init; }
    public required string Kernel { get; init; }
    public required int SupportSize { get; init; }
    public required long Steps { get; init; }
    public required double TrainingSeconds { get; init; }
    public required double StepsPerSecond { get; init; }
    public required double? FinalLoss { get; init; }
    public required double TestAccuracy { get; init; }
    public required double TestMse { get; init; }
    public required double PeakRssMb { get; init; }
    public required IReadOnlyList<EvaluationPoint> Evaluations { get; init; }
    public required IReadOnlyDictionary<string, string> Outputs { get; init; }
}
