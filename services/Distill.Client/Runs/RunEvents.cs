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

/// <summary>A phase that takes no steps and can take long.</summary>
public enum RunPhase
{
    Unspecified,
    /// <summary>KRR on the test split (or a feature-pool run's test subset).</summary>
    Evaluation,
    /// <summary>A Label Solve's sums over the train split.</summary>
    LabelSolve,
    /// <summary>A feature-pool run's set-up: the targets' features under each network of the pool.</summary>
    FeaturePoolSetup,
    /// <summary>The support set's own Gram matrix, within an evaluation or a Label Solve.</summary>
    SupportGram,
}

/// <summary>
/// A phase under way with the support set of <paramref name="Step"/> (0 for a set-up): <paramref name="Done"/>
/// of <paramref name="Total"/> (test images for an evaluation, train images for a Label Solve, networks
/// for a set-up, image pairs for a support Gram).
/// </summary>
public sealed record PhaseEvent(long Sequence, DateTimeOffset Time, RunPhase Phase, long Step, long Done, long Total, TimeSpan Elapsed)
    : RunEventRecord(Sequence, Time)
{
    /// <summary>The phase in words, for a progress line: "evaluation at step 400", "Label Solve", "feature pool set-up".</summary>
    public string What => Phase switch
    {
        RunPhase.LabelSolve => "Label Solve",
        RunPhase.FeaturePoolSetup => "feature pool set-up",
        RunPhase.SupportGram => $"support Gram at step {Step}",
        _ => $"evaluation at step {Step}",
    };

    /// <summary>What <see cref="Done"/> and <see cref="Total"/> count.</summary>
    public string Unit => Phase switch
    {
        RunPhase.LabelSolve => "train images",
        RunPhase.FeaturePoolSetup => "networks",
        RunPhase.SupportGram => "image pairs",
        _ => "test images",
    };
}

/// <summary>An event of a kind newer than this client; kept so that sequence numbers stay gapless.</summary>
public sealed record UnrecognizedEvent(long Sequence, DateTimeOffset Time)
    : RunEventRecord(Sequence, Time);
