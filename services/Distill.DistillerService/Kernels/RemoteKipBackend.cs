using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Regression;
using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using static TorchSharp.torch;
using CoreKernelSpec = Distill.Core.Kernels.KernelSpec;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.DistillerService.Kernels;

/// <summary>
/// KIP's kernel arithmetic on kernel services. A target batch is cut into one contiguous
/// shard per configured service and the shards' results are summed in shard order, so the
/// result is the same whichever services end up computing them. A shard whose service
/// fails moves to the next one; when none answers, the run pauses and probes until one returns.
/// </summary>
public sealed class RemoteKipBackend(
    KernelServicePool pool,
    DatasetReference dataset,
    CoreKernelSpec kernel,
    double regularization,
    long trainCount,
    Action<bool> availabilityChanged,
    TimeSpan probeInterval,
    ILogger logger) : IKipBackend
{
    private readonly KernelSpec _kernel = kernel.ToMessage();
    private readonly Lock _pauseLock = new();
    private Task? _waitForService;

    public async Task<KipShardResult> StepAsync(Tensor supportImages, Tensor supportLabels, long[] targetIndices, bool wantLabelGradient,
        CancellationToken cancellation)
    {
        var support = supportImages.ToMessage();
        var labels = supportLabels.ToMessage();
        var shards = Shards(targetIndices.Length);
        var results = await Task.WhenAll(shards.Select((range, i) => OnAnyAsync(i, async (client, id, options) =>
        {
            var request = new KipShardRequest
            {
                Kernel = _kernel, Support = support, SupportLabels = labels, TotalTargets = targetIndices.Length,
                Regularization = regularization, WantLabelGradient = wantLabelGradient,
                Targets = new DatasetRows { DatasetId = id, Split = Split.Train },
            };
            request.Targets.Indices.AddRange(targetIndices.Skip(range.Start).Take(range.Count));
            // Converted as each arrives, while the other shards are still computing.
            return (await client.KipShardStepAsync(request, options).ResponseAsync).ToResult();
        }, cancellation)));

        // Summed in shard order, whichever service computed each shard.
        var total = results[0];
        foreach (var next in results.Skip(1))
        {
            total.Reduction.add_(next.Reduction);
            total.SupportGradient.add_(next.SupportGradient);
            total.LabelGradient?.add_(next.LabelGradient!);
            next.Dispose();
        }
        return new KipShardResult
        {
            Loss = results.Sum(r => r.Loss),
            Reduction = total.Reduction,
            SupportGradient = total.SupportGradient,
            LabelGradient = wantLabelGradient ? total.LabelGradient : null,
            Method = results.Max(r => r.Method),
        };
    }

    /// <summary>
    /// Registers the dataset on every reachable service up front: loading it takes seconds,
    /// and a run's steps should not wait for it one service at a time.
    /// </summary>
    public async Task PrepareAsync(CancellationToken cancellation)
    {
        await Task.WhenAll(pool.Endpoints.Select(async endpoint =>
        {
            try
            {
                await pool.CallAsync(endpoint, dataset, (_, id, _) => Task.FromResult(id), cancellation);
            }
            catch (RpcException e) when (!cancellation.IsCancellationRequested)
            {
                logger.LogWarning("Kernel service {Address} could not register {Dataset}: {Status}", endpoint.Address, dataset.Path, e.Status);
            }
        }));
    }

    public async Task<EvaluationResult> EvaluateAsync(Tensor supportImages, Tensor supportLabels, CancellationToken cancellation)
    {
        var support = supportImages.ToMessage();
        var labels = supportLabels.ToMessage();
        var response = await OnAnyAsync(0, (client, id, options) => client.EvaluateKrrAsync(new EvaluateKrrRequest
        {
            Kernel = _kernel, Support = support, SupportLabels = labels, Regularization = regularization, DatasetId = id, Split = Split.Test,
        }, options).ResponseAsync, cancellation);
        return new EvaluationResult(response.Accuracy, response.Mse, (int)response.Count, Enum.Parse<SolveMethod>(response.SolveMethod));
    }

    public async Task<Tensor> SolveLabelsAsync(Tensor supportImages, CancellationToken cancellation)
    {
        var support = supportImages.ToMessage();
        var responses = await Task.WhenAll(Shards(trainCount).Select((range, i) => OnAnyAsync(i, (client, id, options) =>
            client.LabelSolveShardAsync(new LabelSolveShardRequest
            {
                Kernel = _kernel, Support = support,
                Targets = new DatasetRows { DatasetId = id, Split = Split.Train, Ranges = { new IndexRange { Start = range.Start, Count = range.Count } } },
            }, options).ResponseAsync, cancellation)));
        using var scope = NewDisposeScope();
        var normal = responses.Select(r => r.Normal.ToTorch("normal")).Aggregate((a, b) => a.add_(b));
        var projected = responses.Select(r => r.Projected.ToTorch("projected")).Aggregate((a, b) => a.add_(b));
        var (solved, _) = LabelSolver.Finish(responses[0].SupportGram.ToTorch("support_gram"), normal, projected, regularization);
        return solved.MoveToOuterDisposeScope();
    }

    /// <summary>Contiguous shards, one per configured service (fewer when there are fewer rows).</summary>
    private List<(int Start, int Count)> Shards(long rows)
    {
        var count = (int)Math.Max(1, Math.Min(pool.Endpoints.Count, rows));
        var shards = new List<(int, int)>();
        for (int i = 0; i < count; i++)
        {
            var start = (int)(rows * i / count);
            shards.Add((start, (int)(rows * (i + 1) / count) - start));
        }
        return shards;
    }

    /// <summary>The call on the shard's own service, else on the others in turn, else after waiting for any to return.</summary>
    private async Task<T> OnAnyAsync<T>(int preferred, Func<KernelService.KernelServiceClient, string, CallOptions, Task<T>> call,
        CancellationToken cancellation)
    {
        while (true)
        {
            // Read again after each wait: the services may have changed meanwhile.
            var endpoints = pool.Endpoints;
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
                catch (RpcException e) when (KernelServicePool.IsTransient(e) || e.StatusCode == StatusCode.Cancelled)
                {
                    logger.LogWarning("Kernel service {Address} failed: {Status}", endpoint.Address, e.Status);
                }
            }
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
        availabilityChanged(false);
        while (true)
        {
            foreach (var endpoint in pool.Endpoints)
            {
                if (await pool.IsReachableAsync(endpoint, cancellation))
                {
                    availabilityChanged(true);
                    return;
                }
            }
            await Task.Delay(probeInterval, cancellation);
        }
    }
}
