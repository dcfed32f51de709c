using Google.Protobuf;
using Grpc.Core;

namespace Distill.Client.Tests;

/// <summary>A CallInvoker that answers from a handler and records what was sent, so the client is tested without a server.</summary>
internal sealed class FakeInvoker(Func<string, IMessage, object> answer) : CallInvoker
{
    public List<(string Method, IMessage Request, Metadata? Headers)> Calls { get; } = [];

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        Calls.Add((method.Name, (IMessage)request, options.Headers));
        var response = Task.Run(() => answer(method.Name, (IMessage)request) is Exception e ? throw e : (TResponse)answer(method.Name, (IMessage)request));
        return new AsyncUnaryCall<TResponse>(response, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
    {
        Calls.Add((method.Name, (IMessage)request, options.Headers));
        var items = (IEnumerable<object>)answer(method.Name, (IMessage)request);
        return new AsyncServerStreamingCall<TResponse>(new Reader<TResponse>(items.GetEnumerator()), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });
    }

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) => throw new NotSupportedException();
    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw new NotSupportedException();
    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) => throw new NotSupportedException();

    /// <summary>Yields the items in turn; an Exception item is thrown at that point of the stream.</summary>
    private sealed class Reader<T>(IEnumerator<object> items) : IAsyncStreamReader<T>
    {
        public T Current { get; private set; } = default!;

        public Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            if (!items.MoveNext()) return Task.FromResult(false);
            if (items.Current is Exception e) return Task.FromException<bool>(e);
            Current = (T)items.Current;
            return Task.FromResult(true);
        }
    }
}
