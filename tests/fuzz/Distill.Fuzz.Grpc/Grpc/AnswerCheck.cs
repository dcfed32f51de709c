using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Distill.Core.Errors;
using Google.Rpc;
using Grpc.Core;

namespace Distill.Fuzz.Grpc;

/// <summary>
/// Whether an answer is one the .proto files document: OK, or an error whose code the
/// services map their typed errors to, carrying an ErrorInfo with one of the stable reasons
/// of <see cref="ErrorReasons"/> (INTERNAL excepted: that reason marks a bug). CANCELLED and
/// DEADLINE_EXCEEDED of a call the fuzzer itself cut short need no details.
/// </summary>
public static class AnswerCheck
{
    private static readonly HashSet<StatusCode> DocumentedCodes =
    [
        StatusCode.InvalidArgument, StatusCode.NotFound, StatusCode.ResourceExhausted, StatusCode.FailedPrecondition,
        StatusCode.AlreadyExists, StatusCode.Unauthenticated, StatusCode.Cancelled, StatusCode.DeadlineExceeded,
    ];

    public static IReadOnlySet<string> DocumentedReasons { get; } = typeof(ErrorReasons)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(field => field.IsLiteral && field.Name != nameof(ErrorReasons.Domain) && field.Name != nameof(ErrorReasons.Internal))
        .Select(field => (string)field.GetRawConstantValue()!)
        .ToHashSet();

    // A .NET stack frame ("   at Namespace.Type.Method(") or an exception type name.
    private static readonly Regex StackTrace = new(@"(^|\n)\s*at [\w.`<>]+\(|\b\w+(\.\w+)+Exception\b", RegexOptions.Compiled);

    /// <summary>
    /// Null when neither the status message nor any of its details (read as text) holds one of
    /// the server's own folders or a stack trace; else what leaked.
    /// </summary>
    public static string? Leak(RpcException error, IReadOnlyList<string> serverPaths)
    {
        var details = error.Trailers.GetValueBytes("grpc-status-details-bin") is { } bytes ? Encoding.UTF8.GetString(bytes) : "";
        var text = error.Status.Detail + "\n" + details;
        foreach (var path in serverPaths)
            if (text.Contains(path, StringComparison.Ordinal))
                return $"{error.StatusCode} names the server's folder {path}: {error.Status.Detail}";
        return StackTrace.IsMatch(text) ? $"{error.StatusCode} carries a stack trace or exception type: {error.Status.Detail}" : null;
    }

    /// <summary>Null when documented, else why not.</summary>
    public static string? Undocumented(RpcException error, bool cutShortByClient)
    {
        var code = error.StatusCode;
        if (cutShortByClient && code is StatusCode.Cancelled or StatusCode.DeadlineExceeded) return null;
        if (!DocumentedCodes.Contains(code)) return $"{code}: {error.Status.Detail}";
        // The server's own cancellation answer (ExceptionStatusInterceptor) carries no details either.
        if (code is StatusCode.Cancelled or StatusCode.DeadlineExceeded) return null;
        var reason = error.GetRpcStatus()?.GetDetail<ErrorInfo>()?.Reason;
        if (reason is null) return $"{code} without an ErrorInfo: {error.Status.Detail}";
        return DocumentedReasons.Contains(reason) ? null : $"{code} with reason {reason}: {error.Status.Detail}";
    }
}
