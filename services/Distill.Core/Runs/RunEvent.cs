using Distill.Core.Evaluation;

namespace Distill.Core.Runs;

/// <summary>Progress of a run, reported as it happens.</summary>
public abstract record RunEvent;

public sealed record RunStarted(long FromStep, long TotalSteps, bool Resumed) : RunEvent;

public sealed record StepCompleted(long Step, long TotalSteps, double Loss, double StepsPerSecond) : RunEvent;

public sealed record EvaluationCompleted(long Step, EvaluationResult Result) : RunEvent;

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
