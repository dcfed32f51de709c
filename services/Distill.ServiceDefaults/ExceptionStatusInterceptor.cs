using Distill.Core.Data;
using Distill.Core.Errors;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Status = Google.Rpc.Status;

namespace Distill.ServiceDefaults;

/// <summary>
/// The one place where exceptions become gRPC statuses, by the engine's typed errors only:
/// a field violation is INVALID_ARGUMENT with a BadRequest, a missing resource NOT_FOUND
/// with a ResourceInfo, a limit RESOURCE_EXHAUSTED with a QuotaFailure (and a RetryInfo
/// when waiting helps), a state conflict FAILED_PRECONDITION or ALREADY_EXISTS, client
/// cancellation CANCELLED or DEADLINE_EXCEEDED. Each carries an ErrorInfo with a stable
/// reason. Anything else is a bug of ours: INTERNAL, logged, details only in Development.
/// </summary>
public sealed class ExceptionStatusInterceptor(ILogger<ExceptionStatusInterceptor> logger, IHostEnvironment environment) : CallInterceptor
{
    protected override async Task<T> Around<T>(ServerCallContext context, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (RpcException)
        {
            throw;
        }
        catch (Exception e) when (IsClientCancellation(e, context))
        {
            var code = StatusOf(e, context);
            throw new RpcException(new Grpc.Core.Status(code,
                code == StatusCode.DeadlineExceeded ? "deadline exceeded; work stopped" : "call cancelled; work stopped"));
        }
        catch (Exception e)
        {
            throw ToRpcException(e, context);
        }
    }

    // A client that goes away mid-stream surfaces as an aborted read: its cancellation, not a server fault.
    private static bool IsClientCancellation(Exception e, ServerCallContext context) =>
        e is OperationCanceledException or IOException && context.CancellationToken.IsCancellationRequested;

    /// <summary>
    /// The status code a call that threw <paramref name="e"/> ends with, for interceptors that
    /// run inside this one and record outcomes (metrics) before the exception is translated.
    /// </summary>
    public static StatusCode StatusOf(Exception e, ServerCallContext context) => e switch
    {
        RpcException rpc => rpc.StatusCode,
        _ when IsClientCancellation(e, context) => context.Deadline <= DateTime.UtcNow ? StatusCode.DeadlineExceeded : StatusCode.Cancelled,
        InvalidFieldException => StatusCode.InvalidArgument,
        ResourceNotFoundException => StatusCode.NotFound,
        LimitExceededException => StatusCode.ResourceExhausted,
        StateConflictException conflict => conflict.AlreadyExists ? StatusCode.AlreadyExists : StatusCode.FailedPrecondition,
        DatasetFormatException => StatusCode.FailedPrecondition,
        _ when IsOutOfMemory(e) => StatusCode.ResourceExhausted,
        _ => StatusCode.Internal,
    };

    private static bool IsOutOfMemory(Exception e) =>
        e is OutOfMemoryException || e is System.Runtime.InteropServices.ExternalException && e.Message.Contains("allocate", StringComparison.OrdinalIgnoreCase);

    private RpcException ToRpcException(Exception e, ServerCallContext context)
    {
        // Google.Rpc.Code numbers the codes as Grpc.Core.StatusCode does.
        var code = (Code)StatusOf(e, context);
        switch (e)
        {
            case InvalidFieldException field:
                return Error(code, field.Message, ErrorReasons.InvalidField, new BadRequest
                {
                    FieldViolations = { new BadRequest.Types.FieldViolation { Field = field.Field, Description = field.Description } },
                });
            case ResourceNotFoundException missing:
                return Error(code, missing.Message, missing.Reason,
                    new ResourceInfo { ResourceType = missing.ResourceType, ResourceName = missing.ResourceName, Description = missing.Message });
            case LimitExceededException limit:
                var quota = new QuotaFailure { Violations = { new QuotaFailure.Types.Violation { Subject = limit.Subject, Description = limit.Message } } };
                return limit.RetryAfter is { } delay
                    ? Error(code, limit.Message, limit.Reason, quota, new RetryInfo { RetryDelay = Duration.FromTimeSpan(delay) })
                    : Error(code, limit.Message, limit.Reason, quota);
            case StateConflictException conflict:
                return Error(code, conflict.Message, conflict.Reason,
                    new PreconditionFailure { Violations = { new PreconditionFailure.Types.Violation { Type = conflict.Reason, Subject = conflict.Subject, Description = conflict.Message } } });
            case DatasetFormatException format:
                // The problem, not the server's path to the file.
                var message = $"{Path.GetFileName(format.FilePath)}: {format.Problem}";
                return Error(code, message, ErrorReasons.DatasetUnreadable,
                    new PreconditionFailure { Violations = { new PreconditionFailure.Types.Violation { Type = ErrorReasons.DatasetUnreadable, Subject = Path.GetFileName(format.FilePath), Description = format.Problem } } });
            case Exception when IsOutOfMemory(e):
                logger.LogWarning(e, "Out of memory in {Method}", context.Method);
                return Error(code, "the server ran out of memory for this request; send smaller blocks", ErrorReasons.RequestTooLarge,
                    new QuotaFailure { Violations = { new QuotaFailure.Types.Violation { Subject = "memory", Description = "the server's free memory" } } });
            default:
                logger.LogError(e, "Unhandled error in {Method}", context.Method);
                return Error(code, environment.IsDevelopment() ? e.ToString() : "internal error; see the server log", ErrorReasons.Internal);
        }
    }

    /// <summary>
    /// Longest text of a status (its message, each string of its details). Errors quote the
    /// client's values (a name, a field); a 100,000-character name quoted back made trailers
    /// past the 64 KB that HTTP/2 clients accept, and the client saw UNAVAILABLE instead.
    /// </summary>
    public const int MaxTextLength = 1024;

    /// <summary>A status with an ErrorInfo first, then the given details; every text cut to <see cref="MaxTextLength"/>.</summary>
    public static RpcException Error(Code code, string message, string reason, params IMessage[] details)
    {
        var status = new Status { Code = (int)code, Message = Clip(message) };
        status.Details.Add(Any.Pack(new ErrorInfo { Reason = reason, Domain = ErrorReasons.Domain }));
        foreach (var detail in details)
        {
            ClipTexts(detail);
            status.Details.Add(Any.Pack(detail));
        }
        return status.ToRpcException();
    }

    private static string Clip(string text) =>
        text.Length <= MaxTextLength ? text : $"{text[..(MaxTextLength - 40)]}... ({text.Length - MaxTextLength + 40} more characters)";

    /// <summary>Clips every string field of the detail and of the messages in its repeated fields (the violations).</summary>
    private static void ClipTexts(IMessage detail)
    {
        foreach (var field in detail.Descriptor.Fields.InDeclarationOrder())
        {
            if (field.FieldType == Google.Protobuf.Reflection.FieldType.String && !field.IsRepeated)
                field.Accessor.SetValue(detail, Clip((string)field.Accessor.GetValue(detail)));
            else if (field.FieldType == Google.Protobuf.Reflection.FieldType.Message && field.IsRepeated && !field.IsMap)
                foreach (IMessage item in (System.Collections.IList)field.Accessor.GetValue(detail)) ClipTexts(item);
        }
    }
}
