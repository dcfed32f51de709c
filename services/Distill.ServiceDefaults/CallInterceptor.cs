using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Distill.ServiceDefaults;

/// <summary>An interceptor that wraps every kind of call in one piece of code.</summary>
public abstract class CallInterceptor : Interceptor
{
    protected abstract Task<T> Around<T>(ServerCallContext context, Func<Task<T>> call);

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation) =>
        Around(context, () => continuation(request, context));

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        Around(context, () => continuation(requestStream, context));

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        Around(context, async () => { await continuation(request, responseStream, context); return true; });

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        Around(context, async () => { await continuation(requestStream, responseStream, context); return true; });

    /// <summary>Health checks must answer load balancers and orchestrators without credentials.</summary>
    protected static bool IsHealthCheck(ServerCallContext context) =>
        context.Method.StartsWith("/grpc.health.v1.Health/", StringComparison.Ordinal);
}
