using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace Distill.Fuzz.Grpc;

/// <summary>How the fuzzer ends a call besides letting it finish: cancelled, a tiny deadline, or a stream cut short.</summary>
public enum CallShape { Complete, Cancelled, TinyDeadline, CutShort }

/// <summary>
/// Calls any RPC from its descriptor, requests and responses as plain <see cref="IMessage"/>:
/// one code path for every method of both services, whatever its streaming kind.
/// </summary>
public static class DynamicCall
{
    /// <summary>The responses, at most <paramref name="maxResponses"/> of a server stream.</summary>
    public static async Task<int> InvokeAsync(CallInvoker invoker, MethodDescriptor method, IReadOnlyList<IMessage> requests,
        CallShape shape, Random random, int maxResponses = 10_000)
    {
        using var cancel = new CancellationTokenSource();
        var deadline = DateTime.UtcNow + (shape == CallShape.TinyDeadline ? TimeSpan.FromMilliseconds(random.Next(1, 20)) : TimeSpan.FromSeconds(5));
        if (shape == CallShape.Cancelled) cancel.CancelAfter(random.Next(0, 20));
        var options = new CallOptions(deadline: deadline, cancellationToken: cancel.Token);
        var grpcMethod = Describe(method);
        switch (method.IsClientStreaming, method.IsServerStreaming)
        {
            case (false, false):
                await invoker.AsyncUnaryCall(grpcMethod, null, options, requests[0]);
                return 1;
            case (false, true):
            {
                using var call = invoker.AsyncServerStreamingCall(grpcMethod, null, options, requests[0]);
                int count = 0;
                // Cut short: the client leaves after the first message, as a closed tab would.
                int limit = shape == CallShape.CutShort ? 1 : maxResponses;
                while (count < limit && await call.ResponseStream.MoveNext(cancel.Token)) count++;
                return count;
            }
            case (true, false):
            {
                using var call = invoker.AsyncClientStreamingCall(grpcMethod, null, options);
                int sent = shape == CallShape.CutShort ? random.Next(requests.Count + 1) : requests.Count;
                foreach (var request in requests.Take(sent)) await call.RequestStream.WriteAsync(request, cancel.Token);
                if (shape == CallShape.CutShort)
                {
                    // The client goes away mid-upload: its stream is never completed.
                    cancel.Cancel();
                }
                else
                {
                    await call.RequestStream.CompleteAsync();
                }
                await call.ResponseAsync;
                return 1;
            }
            default:
                throw new NotSupportedException($"{method.FullName}: bidirectional streams are not part of the API");
        }
    }

    private static Method<IMessage, IMessage> Describe(MethodDescriptor method)
    {
        var type = (method.IsClientStreaming, method.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (false, true) => MethodType.ServerStreaming,
            (true, false) => MethodType.ClientStreaming,
            _ => MethodType.DuplexStreaming,
        };
        return new Method<IMessage, IMessage>(type, method.Service.FullName, method.Name,
            Marshaller(method.InputType.Parser), Marshaller(method.OutputType.Parser));
    }

    private static Marshaller<IMessage> Marshaller(MessageParser parser) =>
        Marshallers.Create(message => message.ToByteArray(), bytes => parser.ParseFrom(bytes));
}
