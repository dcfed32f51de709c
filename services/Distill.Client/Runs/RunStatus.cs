namespace Distill.Client;

/// <summary>A run's lifecycle state.</summary>
public enum RunStatus
{
    Queued = 1,
    Running = 2,
    /// <summary>No kernel service is reachable; the run continues when one returns.</summary>
    Paused = 3,
    Succeeded = 4,
    Failed = 5,
    Cancelled = 6,
}

public static class RunStatusExtensions
{
    /// <summary>Whether the run has ended (it may still be resumed).</summary>
    public static bool IsEnded(this RunStatus status) =>
        status is RunStatus.Succeeded or RunStatus.Failed or RunStatus.Cancelled;
}
