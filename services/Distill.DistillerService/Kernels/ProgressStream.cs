using Grpc.Core;

namespace Distill.DistillerService.Kernels;

/// <summary>The kernel service's streams that send progress messages and then one result.</summary>
internal static class ProgressStream
{
    /// <summary>
    /// Reads <paramref name="call"/> up to the message <paramref name="result"/> finds a result in,
    /// handing the messages before it to <paramref name="progress"/>.
    /// </summary>
    public static async Task<TResult> ReadToResultAsync<TUpdate, TResult>(AsyncServerStreamingCall<TUpdate> call, Func<TUpdate, TResult?> result,
        Action<TUpdate> progress, CancellationToken cancellation) where TResult : class
    {
        using (call)
        {
            await foreach (var update in call.ResponseStream.ReadAllAsync(cancellation))
            {
                if (result(update) is { } answer) return answer;
                progress(update);
            }
        }
        throw new RpcException(new Status(StatusCode.Internal, $"the stream of {typeof(TUpdate).Name} ended without a result"));
    }
}
