namespace Distill.Core.Errors;

/// <summary>
/// A request that the resource's current state does not allow (resume a running run,
/// export before the first checkpoint): FAILED_PRECONDITION, or ALREADY_EXISTS when
/// <see cref="AlreadyExists"/> is set.
/// </summary>
public sealed class StateConflictException(string reason, string subject, string message, bool alreadyExists = false)
    : Exception(message)
{
    /// <summary>A stable reason for clients, e.g. RUN_STATE_CONFLICT.</summary>
    public string Reason { get; } = reason;

    /// <summary>The resource or field whose state is at fault.</summary>
    public string Subject { get; } = subject;

    public bool AlreadyExists { get; } = alreadyExists;
}
