using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;

namespace Distill.Client;

/// <summary>A precondition the server found unmet, e.g. a run in the wrong state for the call.</summary>
public sealed record PreconditionViolation(string Type, string Subject, string Description);

/// <summary>
/// A failed distiller call with the server's rich error details decoded, so that callers can
/// act on them: show each field violation at its form field, wait for the retry delay, branch
/// on the stable <see cref="Reason"/> (e.g. RUN_NOT_FOUND, RUN_STATE_CONFLICT).
/// </summary>
public sealed class DistillerException : Exception
{
    public DistillerException(
        StatusCode statusCode,
        string detail,
        string? reason = null,
        string? domain = null,
        IReadOnlyDictionary<string, string>? fieldViolations = null,
        TimeSpan? retryDelay = null,
        string? resourceName = null,
        IReadOnlyList<PreconditionViolation>? preconditionViolations = null,
        Exception? innerException = null)
        : base($"{statusCode}: {detail}" + (reason is null ? "" : $" ({reason})"), innerException)
    {
        StatusCode = statusCode;
        Detail = detail;
        Reason = reason;
        Domain = domain;
        FieldViolations = fieldViolations ?? new Dictionary<string, string>();
        RetryDelay = retryDelay;
        ResourceName = resourceName;
        PreconditionViolations = preconditionViolations ?? [];
    }

    public StatusCode StatusCode { get; }
    /// <summary>The server's message, without the status code.</summary>
    public string Detail { get; }
    /// <summary>ErrorInfo.reason, a stable upper-case code; null when the server sent none.</summary>
    public string? Reason { get; }
    public string? Domain { get; }
    /// <summary>BadRequest field violations: field path (e.g. "spec.steps") to description.</summary>
    public IReadOnlyDictionary<string, string> FieldViolations { get; }
    /// <summary>RetryInfo: how long to wait before the same call may succeed.</summary>
    public TimeSpan? RetryDelay { get; }
    /// <summary>ResourceInfo: the resource that was not found.</summary>
    public string? ResourceName { get; }
    public IReadOnlyList<PreconditionViolation> PreconditionViolations { get; }

    /// <summary>
    /// The field violations split for a form: <paramref name="formField"/> names the form's field
    /// for a server field path, or null where the form has none; those come back as "path: message"
    /// lines to show beside the form.
    /// </summary>
    public (Dictionary<string, string> Fields, IReadOnlyList<string> Others) ViolationsFor(Func<string, string?> formField)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var others = new List<string>();
        foreach (var (path, message) in FieldViolations)
        {
            if (formField(path) is { } field) fields[field] = message;
            else others.Add($"{path}: {message}");
        }
        return (fields, others);
    }

    /// <summary>Whether repeating the same call may succeed (the kernel API's retry rule).</summary>
    public bool IsRetryable => StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded || RetryDelay is not null;

    /// <summary>Decodes the google.rpc.Status details that the server put in the trailers, if any.</summary>
    public static DistillerException FromRpcException(RpcException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        Google.Rpc.Status? status;
        try
        {
            status = exception.GetRpcStatus();
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            status = null;  // a malformed trailer must not hide the error itself
        }
        return status is null
            ? new DistillerException(exception.StatusCode, exception.Status.Detail, innerException: exception)
            : FromStatus(status, exception);
    }

    /// <summary>Decodes a google.rpc.Status; details of types this client does not know are skipped.</summary>
    public static DistillerException FromStatus(Google.Rpc.Status status, Exception? innerException = null)
    {
        ArgumentNullException.ThrowIfNull(status);
        string? reason = null, domain = null, resource = null;
        TimeSpan? retry = null;
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var preconditions = new List<PreconditionViolation>();
        foreach (var detail in status.Details)
        {
            if (detail.TryUnpack<ErrorInfo>(out var info))
            {
                reason ??= NullIfEmpty(info.Reason);
                domain ??= NullIfEmpty(info.Domain);
            }
            else if (detail.TryUnpack<BadRequest>(out var bad))
            {
                // One entry per field: a field named twice keeps both descriptions.
                foreach (var v in bad.FieldViolations)
                    fields[v.Field] = fields.TryGetValue(v.Field, out var earlier) ? $"{earlier}; {v.Description}" : v.Description;
            }
            else if (detail.TryUnpack<RetryInfo>(out var retryInfo) && retryInfo.RetryDelay is { } delay)
            {
                retry = delay.ToTimeSpan();
            }
            else if (detail.TryUnpack<ResourceInfo>(out var resourceInfo))
            {
                resource ??= NullIfEmpty(resourceInfo.ResourceName);
            }
            else if (detail.TryUnpack<PreconditionFailure>(out var failure))
            {
                preconditions.AddRange(failure.Violations.Select(v => new PreconditionViolation(v.Type, v.Subject, v.Description)));
            }
        }
        return new DistillerException((StatusCode)status.Code, status.Message, reason, domain, fields, retry, resource, preconditions, innerException);
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}
