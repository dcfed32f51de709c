namespace Distill.Client;

/// <summary>A run as the distiller reports it.</summary>
/// <param name="Id">The bare id, e.g. "run-abc".</param>
/// <param name="Name">The resource name, "runs/{id}".</param>
/// <param name="TotalSteps">The steps the run aims for (its spec's, raised by a resume).</param>
/// <param name="TestAccuracy">The latest evaluation; null before the first.</param>
/// <param name="CheckpointStep">Null before the first checkpoint.</param>
/// <param name="StepsPerSecond">Over the latest stretch of steps; 0 when not running.</param>
/// <param name="RequestId">The request id of the StartRun that created it, if any.</param>
public sealed record RunInfo(
    string Id,
    string Name,
    RunStatus State,
    string StateMessage,
    RunSpecification Spec,
    long Step,
    long TotalSteps,
    double? LastLoss,
    double? TestAccuracy,
    double? BestTestAccuracy,
    long? CheckpointStep,
    double StepsPerSecond,
    DateTimeOffset CreateTime,
    DateTimeOffset UpdateTime,
    string? RequestId);
