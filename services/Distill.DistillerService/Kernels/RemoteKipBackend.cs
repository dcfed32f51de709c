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
/// <paramref name="evaluationRows"/> of it; they and Label Solves go out in chunks over every service.
/// </summary>
public sealed class RemoteKipBackend(
    KernelServicePool pool,
    DatasetReference dataset,
    CoreKernelSpec kernel,
    double regularization,
    long trainCount,
    long testCount,
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

    /// <summary>Fewest test rows per evaluation call, and train rows per Label Solve call (more with a large support).</summary>
    private const long EvaluationChunkRows = 1000, LabelSolveChunkRows = 2000;

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

    public async Task<EvaluationResult> EvaluateAsync(Tensor supportImages, Tensor supportLabels, Action<RowsDone>? progress,
        CancellationToken cancellation)
    {
        var support = Shaped(supportImages);
        var labels = supportLabels.ToMessage();
        var rows = evaluationRows?.LongLength ?? testCount;
        var responses = await OverChunksAsync(rows, supportImages.shape[0], EvaluationChunkRows, (endpoint, name, options, chunk, rowsDone) =>
        {
            var evaluation = new EvaluateKrrRequest
            {
                Kernel = _kernel, Support = support, SupportLabels = labels, Regularization = regularization, Dataset = name, Split = Split.Test,
            };
            evaluation.Indices.AddRange(evaluationRows is null
                ? Enumerable.Range(chunk.Start, chunk.Count).Select(i => (long)i)
                : evaluationRows.Skip(chunk.Start).Take(chunk.Count));
            var request = new StreamEvaluateKrrRequest { Evaluation = evaluation, BlockRows = BlockRows(chunk.Count) };
            return ProgressStream.ReadToResultAsync(endpoint.Client.StreamEvaluateKrr(request, options), update => update.Result,
                update => rowsDone(update.Progress is { } p ? ChunkProgress(p.RowsDone, p.SupportPairsDone, p.SupportPairs) : default),
                options.CancellationToken);
        }, progress, cancellation);
        // Each chunk's counts back from its accuracy and mean error, summed in chunk order.
        long count = responses.Sum(r => r.Count);
        double correct = responses.Sum(r => Math.Round(r.Accuracy * r.Count));
        double squaredError = responses.Sum(r => r.Mse * r.Count);
        return new EvaluationResult(correct / count, squaredError / count, (int)count, responses.Max(r => r.SolveMethod).ToCore());
    }

    public async Task<Tensor> SolveLabelsAsync(Tensor supportImages, Action<RowsDone>? progress, CancellationToken cancellation)
    {
        var support = Shaped(supportImages);
        var responses = await OverChunksAsync(trainCount, supportImages.shape[0], LabelSolveChunkRows, (endpoint, name, options, chunk, rowsDone) =>
        {
            var shard = new LabelSolveShardRequest
            {
                Kernel = _kernel, Support = support,
                Targets = new DatasetRows { Dataset = name, Split = Split.Train, Ranges = { new IndexRange { Start = chunk.Start, Count = chunk.Count } } },
                // K_ss is the same for every chunk: the first one's is used.
                OmitSupportGram = chunk.Start > 0,
            };
            return ProgressStream.ReadToResultAsync(
                endpoint.Client.StreamLabelSolveShard(new StreamLabelSolveShardRequest { Shard = shard, BlockRows = BlockRows(chunk.Count) }, options),
                update => update.Result, update => rowsDone(update.Progress is { } p ? ChunkProgress(p.RowsDone, p.SupportPairsDone, p.SupportPairs) : default),
                options.CancellationToken);
        }, progress, cancellation);
        using var scope = NewDisposeScope();
        var normal = responses.Select(r => r.Normal.ToTorch("normal")).Aggregate((a, b) => a.add_(b, One));
        var projected = responses.Select(r => r.Projected.ToTorch("projected")).Aggregate((a, b) => a.add_(b, One));
        var (solved, _) = LabelSolver.Finish(responses[0].SupportGram.ToTorch("support_gram"), normal, projected, regularization);
        return solved.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rows of an evaluation or a Label Solve handed out in chunks, each to the next service
    /// that finishes one, so that every service works and progress comes at least chunk by
    /// chunk (a call may report its rows done within the chunk too); the results are in chunk
    /// order. Each chunk of an evaluation recomputes the support's own Gram matrix for its
    /// solve, so it holds at least ten rows per support image (a few per cent more work). A
    /// Label Solve asks the first chunk alone for it and keeps the same floor, for another
    /// reason: each chunk answers with an n_s x n_s matrix, which stays small beside its rows.
    /// The first chunk's Gram progress is reported as the support Gram's.
    /// </summary>
    private async Task<T[]> OverChunksAsync<T>(long rows, long supportRows, long minimumRows,
        Func<KernelEndpoint, string, CallOptions, (int Start, int Count), Action<RowsDone>, Task<T>> call, Action<RowsDone>? progress,
        CancellationToken cancellation)
    {
        var services = Math.Max(1, pool.Endpoints.Count);
        var size = Math.Min(Math.Max(minimumRows, 10 * supportRows), Math.Max(1, (rows + services - 1) / services));
        var chunks = KernelFailover.Shards(rows, (int)((rows + size - 1) / size));
        var results = new T[chunks.Count];
        var done = new PartProgress(chunks.Count, rows, progress);
        int next = -1;
        // A failed chunk stops the others: the whole evaluation fails with its error.
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        async Task Work(int preferred)
        {
            for (int i; (i = Interlocked.Increment(ref next)) < chunks.Count;)
            {
                var (chunk, index) = (chunks[i], i);
                try
                {
                    results[i] = await _failover.OnAnyAsync(preferred,
                        (endpoint, name, options) => call(endpoint, name, options, chunk, rowsDone =>
                        {
                            if (!rowsDone.SupportGram) done.Advance(index, Math.Min(rowsDone.Done, chunk.Count));
                            else if (index == 0) done.Relay(rowsDone);
                        }),
                        failed.Token);
                }
                catch
                {
                    failed.Cancel();
                    throw;
                }
                done.Advance(i, chunk.Count);
            }
        }
        // Workers the failure cancelled end cancelled, not faulted: the failure is what this throws.
        await Task.WhenAll(Enumerable.Range(0, Math.Min(services, chunks.Count)).Select(Work));
        return results;
    }

    /// <summary>A chunk's progress message: its support Gram's pairs while it reports them, else its rows done.</summary>
    private static RowsDone ChunkProgress(long rowsDone, long supportPairsDone, long supportPairs) =>
        supportPairs > 0 ? new RowsDone(supportPairsDone, supportPairs, SupportGram: true) : new RowsDone(rowsDone, 0);

    /// <summary>
    /// Rows per block of a chunk's call, for about ten progress messages per chunk: a chunk of an
    /// exact ConvNet evaluation or Label Solve can take many minutes. The service caps it.
    /// </summary>
    private static long BlockRows(int chunkRows) => Math.Max(chunkRows / 10, 10);

    /// <summary>The engine's flattened support set as images, N x C x H x W, as the API sends them.</summary>
    private TensorMessage Shaped(Tensor supportImages) => supportImages.ToMessage(shape: [supportImages.shape[0], .. imageShape]);

    private List<(int Start, int Count)> Shards(long rows) => KernelFailover.Shards(rows, pool.Endpoints.Count);
}
