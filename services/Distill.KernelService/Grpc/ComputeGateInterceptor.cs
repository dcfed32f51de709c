using System.Diagnostics;
using Distill.Core.Errors;
using Distill.KernelService.Configuration;
using Distill.KernelService.Telemetry;
using Distill.ServiceDefaults;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Distill.KernelService.Grpc;

/// <summary>
/// Admits at most KernelService:MaxConcurrentRequests compute calls at once, refusing the
/// rest at once with RESOURCE_EXHAUSTED (clients retry or go to another replica rather than
/// queue behind work they cannot see), and records each call's latency and status.
/// </summary>
public sealed class ComputeGateInterceptor : CallInterceptor
{
    private static readonly HashSet<string> ComputeMethods =
        ["ComputeGram", "VectorJacobianProduct", "SolveKrr", "EvaluateKrr", "StreamEvaluateKrr", "KipShardStep", "LabelSolveShard", "StreamLabelSolveShard", "UploadDataset", "RegisterDataset",
         "RegisterFeaturePool", "StreamRegisterFeaturePool", "FeaturePoolStep", "FeaturePoolProducts", "FeaturePoolProductsGradient"];

    /// <summary>What a refused caller is told to wait: about one small compute call.</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly SemaphoreSlim _slots;
    private readonly KernelServiceMetrics _metrics;
    private readonly int _limit;

    public ComputeGateInterceptor(IOptions<KernelServiceOptions> options, KernelServiceMetrics metrics)
    {
        _limit = Math.Max(1, options.Value.MaxConcurrentRequests);
        _slots = new SemaphoreSlim(_limit, _limit);
        _metrics = metrics;
        _metrics.Slots = _limit;
    }

    /// <summary>Compute calls running now.</summary>
    public int CallsInFlight => _limit - _slots.CurrentCount;

    protected override async Task<T> Around<T>(ServerCallContext context, Func<Task<T>> call)
    {
        var method = context.Method[(context.Method.LastIndexOf('/') + 1)..];
        var watch = Stopwatch.StartNew();
        var status = "OK";
        var gated = ComputeMethods.Contains(method);
        try
        {
            if (gated && !_slots.Wait(0))
                throw new LimitExceededException(ErrorReasons.ServerBusy, "KernelService:MaxConcurrentRequests",
                    $"the server is busy: {_limit} compute calls are already running (KernelService:MaxConcurrentRequests); retry later or use another replica",
                    retryAfter: RetryDelay);
            if (gated) _metrics.Started();
            try
            {
                return await call();
            }
            finally
            {
                if (gated)
                {
                    _slots.Release();
                    _metrics.Finished();
                }
            }
        }
        catch (Exception e)
        {
            // The status mapping runs outside this interceptor, so name the outcome as it will.
            status = ExceptionStatusInterceptor.StatusOf(e, context).ToString();
            throw;
        }
        finally
        {
            _metrics.Completed(method, status, watch.Elapsed);
        }
    }
}
