namespace Distill.Core.Errors;

/// <summary>
/// A configured limit that a request would exceed: RESOURCE_EXHAUSTED with a quota
/// violation naming <see cref="Subject"/>, and a retry delay when trying again later can
/// succeed (the limit is on work in progress, not on the request itself).
/// </summary>
public sealed class LimitExceededException(string reason, string subject, string message, TimeSpan? retryAfter = null)
    : Exception(message)
{
    /// <summary>A stable reason for clients, e.g. SERVER_BUSY.</summary>
    public string Reason { get; } = reason;

    /// <summary>What the limit applies to: a field, or the setting that sets it.</summary>
    public string Subject { get; } = subject;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}
