using System.Diagnostics;
using CoreKernelSpec = Distill.Core.Kernels.KernelSpec;
using Distill.Adapters.Clients;
using Distill.Adapters.Conversions;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Regression;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using Tensor = TorchSharp.torch.Tensor;
using TensorMessage = Distill.Protos.Kernel.V1.Tensor;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.DistillerService.Kernels;

/// <summary>
/// KIP's kernel arithmetic on kernel services. A target batch is cut into one contiguous
/// shard per service and the shards' results are summed in shard order, so the result is
/// the same whichever services end up computing them. A shard whose service is away moves
/// to the next one (<see cref="KernelFailover"/>). Evaluations score the whole test split, or
/// <paramref name="evaluationRows"/> of it.
/// </summary>
public sealed class RemoteKipBackend(
    KernelServicePool pool,
    DatasetReference dataset,
    CoreKernelSpec kernel,
    double regularization,
    long trainCount,
    long[] imageShape,
    string? runName,
    Action<bool>? availabilityChanged,
    TimeSpan probeInterval,
    TimeProvider time,
    ILogger logger,
    long[]? evaluationRows = null) : IKipBackend
{
    private readonly KernelSpec _kernel = kernel.ToMessage();
    private readonly KernelFailover _failover = new(pool, dataset, availabilityChanged, probeInterval, time, logger);

    public async Task<KipShardResult> StepAsync(Tensor supportImages, Tensor supportLabels, long[] targetIndices, bool wantLabelGradient,
        CancellationToken cancellation)
    {
        var support = Shaped(supportImages);
        var labels = supportLabels.ToMessage();
        var shards = Shards(targetIndices.Length);
        var calls = shards.Select((range, i) => _failover.OnAnyAsync(i, async (endpoint, name, options) =>
        {
            var request = new KipShardStepRequest
            {
                Kernel = _kernel, Support = support, SupportLabels = labels, TotalTargets = targetIndices.Length,
                Regularization = regularization, WantLabelGradient = wantLabelGradient,
                Targets = new DatasetRows { Dataset = name, Split = Split.Train },
            };
            request.Targets.Indices.AddRange(targetIndices.Skip(range.Start).Take(range.Count));
            var started = Stopwatch.GetTimestamp();
            var response = await endpoint.Client.KipShardStepAsync(request, options).ResponseAsync;
            endpoint.Record(response.ComputeTime?.ToTimeSpan() ?? TimeSpan.Zero, Stopwatch.GetElapsedTime(started), runName, time.GetUtcNow());
            // Converted as each arrives, while the other shards are still computing.
            return response.ToResult();
        }, cancellation)).ToArray();
        try
        {
            await Task.WhenAll(calls);
        }
        catch
        {
            // The step failed: free what the shards that did finish made.
            foreach (var call in calls)
                if (call.IsCompletedSuccessfully) call.Result.Dispose();
            throw;
        }
        var results = calls.Select(c => c.Result).ToArray();

        // Summed in shard order, whichever service computed each shard.
        var total = results[0];
        foreach (var next in results.Skip(1))
        {
            total.Reduction.add_(next.Reduction, One);
            total.SupportGradient.add_(next.SupportGradient, One);
            total.LabelGradient?.add_(next.LabelGradient!, One);
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
                await pool.CallAsync(endpoint, dataset, (_, name, _) => Task.FromResult(name), cancellation);
            }
            catch (RpcException e) when (!cancellation.IsCancellationRequested && KernelErrors.IsRetryable(e))
            {
                logger.LogWarning("Kernel service {Address} could not register {Dataset}: {Status}", endpoint.Address, dataset.Path, e.Status);
            }
            catch (RpcException e) when (!cancellation.IsCancellationRequested)
            {
                throw new KernelServiceException(KernelErrors.Describe(endpoint.Address, e), e);
            }
        }));
    }

    public async Task<EvaluationResult> EvaluateAsync(Tensor supportImages, Tensor supportLabels, CancellationToken cancellation)
    {
        var support = Shaped(supportImages);
        var labels = supportLabels.ToMessage();
        var response = await _failover.OnAnyAsync(0, (endpoint, name, options) => endpoint.Client.EvaluateKrrAsync(new EvaluateKrrRequest
        {
            Kernel = _kernel, Support = support, SupportLabels = labels, Regularization = regularization, Dataset = name, Split = Split.Test,
            Indices = { evaluationRows ?? [] },
        }, options).ResponseAsync, cancellation);
        return new EvaluationResult(response.Accuracy, response.Mse, (int)response.Count, response.SolveMethod.ToCore());
    }

    public async Task<Tensor> SolveLabelsAsync(Tensor supportImages, CancellationToken cancellation)
    {
        var support = Shaped(supportImages);
        var responses = await Task.WhenAll(Shards(trainCount).Select((range, i) => _failover.OnAnyAsync(i, (endpoint, name, options) =>
            endpoint.Client.LabelSolveShardAsync(new LabelSolveShardRequest
            {
                Kernel = _kernel, Support = support,
                Targets = new DatasetRows { Dataset = name, Split = Split.Train, Ranges = { new IndexRange { Start = range.Start, Count = range.Count } } },
            }, options).ResponseAsync, cancellation)));
        using var scope = NewDisposeScope();
        var normal = responses.Select(r => r.Normal.ToTorch("normal")).Aggregate((a, b) => a.add_(b, One));
        var projected = responses.Select(r => r.Projected.ToTorch("projected")).Aggregate((a, b) => a.add_(b, One));
        var (solved, _) = LabelSolver.Finish(responses[0].SupportGram.ToTorch("support_gram"), normal, projected, regularization);
        return solved.MoveToOuterDisposeScope();
    }

    /// <summary>The engine's flattened support set as images, N x C x H x W, as the API sends them.</summary>
    private TensorMessage Shaped(Tensor supportImages) => supportImages.ToMessage(shape: [supportImages.shape[0], .. imageShape]);

    private List<(int Start, int Count)> Shards(long rows) => KernelFailover.Shards(rows, pool.Endpoints.Count);
}
