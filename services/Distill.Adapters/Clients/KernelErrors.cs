using Google.Rpc;
using Grpc.Core;

namespace Distill.Adapters.Clients;

/// <summary>
/// How the distiller reads a kernel service's errors: by status code and google.rpc
/// details (ErrorInfo reason, RetryInfo), never by message text.
/// </summary>
public static class KernelErrors
{
    /// <summary>The service is away (stopped, restarting, unreachable, too slow): move the work elsewhere or wait.</summary>
    public static bool IsOutage(RpcException e) => e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded;

    /// <summary>Worth the same call again: an outage, or an error whose RetryInfo says when.</summary>
    public static bool IsRetryable(RpcException e) => IsOutage(e) || RetryDelay(e) is not null;

    /// <summary>The delay a RetryInfo asks for, if the error carries one.</summary>
    public static TimeSpan? RetryDelay(RpcException e) => Detail<RetryInfo>(e)?.RetryDelay?.ToTimeSpan();

    /// <summary>The ErrorInfo reason, e.g. DATASET_NOT_FOUND.</summary>
    public static string? Reason(RpcException e) => Detail<ErrorInfo>(e)?.Reason;

    /// <summary>What a failed run says about the service: its address, the status code, the reason and the message.</summary>
    public static string Describe(string address, RpcException e)
    {
        var reason = Reason(e);
        return $"kernel service {address} failed: {e.StatusCode}{(reason is null ? "" : $" ({reason})")}: {e.Status.Detail}";
    }

    private static T? Detail<T>(RpcException e) where T : class, Google.Protobuf.IMessage<T>, new()
    {
        try
        {
            return e.GetRpcStatus()?.GetDetail<T>();
        }
        catch (Google.Protobuf.InvalidProtocolBufferException)
        {
            return null;
        }
    }
}

/// <summary>A kernel service answered with an error that retrying will not fix; the message names the service and why.</summary>
public sealed class KernelServiceException(string message, RpcException inner) : Exception(message, inner);
