namespace Distill.Client;

/// <summary>One entry of a run's event stream; sequence numbers are gapless and increasing per run.</summary>
public abstract record RunEventRecord(long Sequence, DateTimeOffset Time);

public sealed record StateChangedEvent(long Sequence, DateTimeOffset Time, RunStatus State, string Message)
    : RunEventRecord(Sequence, Time);

public sealed record StepEvent(long Sequence, DateTimeOffset Time, long Step, long TotalSteps, double Loss, double StepsPerSecond)
    : RunEventRecord(Sequence, Time);

public sealed record EvaluationEvent(long Sequence, DateTimeOffset Time, long Step, double TestAccuracy, double TestMse)
    : RunEventRecord(Sequence, Time);

/// <param name="Snapshot">The snapshot taken with it, runs/{run}/snapshots/{step}.</param>
public sealed record CheckpointEvent(long Sequence, DateTimeOffset Time, long Step, string Snapshot)
    : RunEventRecord(Sequence, Time);

/// <summary>An event of a kind newer than this client; kept so that sequence numbers stay gapless.</summary>
public sealed record UnrecognizedEvent(long Sequence, DateTimeOffset Time)
    : RunEventRecord(Sequence, Time);
