using Distill.Adapters.Clients;
using Grpc.Core;

namespace Distill.DistillerService.Kernels;

/// <summary>
/// Calls on kernel services that survive services going away: a call whose service is away
/// (UNAVAILABLE, DEADLINE_EXCEEDED, or busy past its retries) moves to the next one; when
/// none answers, a run's caller reports itself unavailable and probes until one returns,
/// while a caller without <paramref name="availabilityChanged"/> (an evaluation) fails with
/// UNAVAILABLE. Any other error fails at once with a message naming the service and why.
/// </summary>
public sealed class KernelFailover(
    KernelServicePool pool,
    DatasetReference dataset,
    Action<bool>? availabilityChanged,
    TimeSpan probeInterval,
    TimeProvider time,
    ILogger logger)
{
    private readonly Lock _pauseLock = new();
    private Task? _waitForService;

    /// <summary>Contiguous shards of <paramref name="rows"/> rows, one per service (fewer when there are fewer rows).</summary>
    public static List<(int Start, int Count)> Shards(long rows, int services)
    {
        var count = (int)Math.Max(1, Math.Min(services, rows));
        var shards = new List<(int, int)>();
        for (int i = 0; i < count; i++)
        {
            var start = (int)(rows * i / count);
            shards.Add((start, (int)(rows * (i + 1) / count) - start));
        }
        return shards;
    }

    /// <summary>The call on the shard's own service, else on the others in turn, else after waiting for any to return.</summary>
    public async Task<T> OnAnyAsync<T>(int preferred, Func<KernelEndpoint, string, CallOptions, Task<T>> call,
        CancellationToken cancellation)
    {
        while (true)
        {
            // Read again after each wait: the services may have changed meanwhile.
            var endpoints = pool.Endpoints;
            RpcException? last = null;
            for (int offset = 0; offset < endpoints.Count; offset++)
            {
                var endpoint = endpoints[(preferred + offset) % endpoints.Count];
                try
                {
                    return await pool.CallAsync(endpoint, dataset, call, cancellation);
                }
                catch (RpcException) when (cancellation.IsCancellationRequested)
                {
                    throw new OperationCanceledException(cancellation);
                }
                // A service that cancels a call it was not asked to cancel is going away too.
                catch (RpcException e) when (KernelErrors.IsRetryable(e) || e.StatusCode == StatusCode.Cancelled)
                {
                    logger.LogWarning("Kernel service {Address} failed: {Status}", endpoint.Address, e.Status);
                    last = e;
                }
                catch (RpcException e)
                {
                    throw new KernelServiceException(KernelErrors.Describe(endpoint.Address, e), e);
                }
            }
            if (availabilityChanged is null)
                throw new RpcException(new Status(StatusCode.Unavailable,
                    endpoints.Count == 0 ? "no kernel service is known" : $"no kernel service answered; the last: {last?.Status.Detail}"));
            await WaitForAnyServiceAsync(cancellation);
        }
    }

    private Task WaitForAnyServiceAsync(CancellationToken cancellation)
    {
        lock (_pauseLock)
        {
            if (_waitForService is { IsCompleted: false } waiting) return waiting.WaitAsync(cancellation);
            _waitForService = Probe(cancellation);
            return _waitForService;
        }
    }

    private async Task Probe(CancellationToken cancellation)
    {
        availabilityChanged?.Invoke(false);
        while (true)
        {
            foreach (var endpoint in pool.Endpoints)
            {
                if (await pool.IsReachableAsync(endpoint, cancellation))
                {
                    availabilityChanged?.Invoke(true);
                    return;
                }
            }
            await Task.Delay(probeInterval, time, cancellation);
        }
    }
}
