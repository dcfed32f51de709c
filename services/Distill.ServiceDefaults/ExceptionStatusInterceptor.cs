using Distill.Core.Data;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Status = Google.Rpc.Status;

namespace Distill.ServiceDefaults;

/// <summary>
/// The one place where exceptions become gRPC statuses: argument errors are
/// INVALID_ARGUMENT with a BadRequest field violation, missing things NOT_FOUND, limits
/// RESOURCE_EXHAUSTED, cancellation CANCELLED or DEADLINE_EXCEEDED, anything else
/// INTERNAL (logged; details only in Development).
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
        // A client that goes away mid-stream surfaces as an aborted read: its cancellation, not a server fault.
        catch (Exception e) when (e is OperationCanceledException or IOException && context.CancellationToken.IsCancellationRequested)
        {
            var expired = context.Deadline <= DateTime.UtcNow;
            throw new RpcException(new Grpc.Core.Status(expired ? StatusCode.DeadlineExceeded : StatusCode.Cancelled,
                expired ? "deadline exceeded; work stopped" : "call cancelled; work stopped"));
        }
        catch (Exception e)
        {
            throw ToRpcException(e, context);
        }
    }

    private RpcException ToRpcException(Exception e, ServerCallContext context)
    {
        switch (e)
        {
            case ArgumentException argument:
                var status = new Status { Code = (int)Code.InvalidArgument, Message = argument.Message.Split(" (Parameter '")[0] };
                status.Details.Add(Any.Pack(new BadRequest
                {
                    FieldViolations = { new BadRequest.Types.FieldViolation { Field = argument.ParamName ?? "", Description = status.Message } },
                }));
                return status.ToRpcException();
            case KeyNotFoundException or FileNotFoundException or DirectoryNotFoundException:
                return Simple(StatusCode.NotFound, e.Message);
            case UnauthorizedAccessException:
                return Simple(StatusCode.PermissionDenied, e.Message);
            case DatasetFormatException or InvalidOperationException:
                return Simple(StatusCode.FailedPrecondition, e.Message);
            case ResourceLimitException:
                return Simple(StatusCode.ResourceExhausted, e.Message);
            case OutOfMemoryException:
            case System.Runtime.InteropServices.ExternalException when e.Message.Contains("allocate", StringComparison.OrdinalIgnoreCase):
                return Simple(StatusCode.ResourceExhausted, "the server ran out of memory for this request; send smaller blocks");
            default:
                logger.LogError(e, "Unhandled error in {Method}", context.Method);
                return Simple(StatusCode.Internal, environment.IsDevelopment() ? e.ToString() : "internal error; see the server log");
        }
    }

    private static RpcException Simple(StatusCode code, string message) => new(new Grpc.Core.Status(code, message));
}
