using System.Collections.Concurrent;
using System.Diagnostics;
using Distill.Adapters.Clients;
using Distill.Adapters.Conversions;
using Distill.Core.Data;
using Distill.Core.Errors;
using Distill.Core.Evaluation;
using Distill.Core.FeaturePool;
using Distill.DistillerService.Configuration;
using Distill.Protos.Kernel.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;
using TensorMessage = Distill.Protos.Kernel.V1.Tensor;

namespace Distill.DistillerService.Kernels;

/// <summary>
/// A feature pool split by networks over kernel services: the P networks are cut into one
/// contiguous range per service, and each service holds the whole target subset's features
/// under its range (set-up and memory scale out). What dominates a pooled step is the support's
/// forward and backward pass through the sampled networks, so a step splits by networks too, in
/// two rounds: each service with sampled networks returns its sums of feature products (keeping
/// the pass's graph), the distiller forms K from their sum and takes the loss
/// (<see cref="PooledKernel.StepFromProducts"/>), and each service turns the loss's cotangents into
/// its share of the support gradient through the graph it kept. With one
/// service, one FeaturePoolStep call does it all. A range whose service is away moves to the next
/// one (<see cref="KernelFailover"/>), which registers that range first: a pool is a pure function
/// of the options, so any service computes the same features. A service that lost a pool
/// (restart, lease) gets it registered again.
/// </summary>
public sealed class RemoteFeaturePoolBackend(
    KernelServicePool pool,
    DatasetReference dataset,
    PreparedDataset data,
    FeaturePoolOptions options,
    long[] imageShape,
    string? runName,
    Action<bool>? availabilityChanged,
    DistillerOptions settings,
    TimeProvider time,
    ILogger logger) : IFeaturePoolBackend
{
    private readonly KernelFailover _failover = new(pool, dataset, availabilityChanged, TimeSpan.FromSeconds(settings.ProbeIntervalSeconds), time, logger);
    private readonly ConcurrentDictionary<(string Address, int Shard), (KernelEndpoint Endpoint, FeaturePool Pool)> _pools = new();
    private readonly long _featureCount = options.PoolNetworks().FeatureCount;
    private long[] _rows = [];
    private List<(int Start, int Count)> _shards = [];
    private long[] _shardBytes = [];

    public long BufferBytes => _shardBytes.Sum();

    public async Task PrepareAsync(IReadOnlyList<long> targetRows, Action<string>? log, Action<RowsDone>? networksDone, CancellationToken cancellation)
    {
        if (options.FreshNetworks)
            throw new InvalidFieldException("feature_pool", "fresh networks every step are computed in one process; kernel services hold a fixed pool");
        _rows = targetRows.ToArray();
        _shards = KernelFailover.Shards(options.PoolSize, Math.Max(1, pool.Endpoints.Count));
        _shardBytes = new long[_shards.Count];
        log?.Invoke($"feature pool: {options.PoolSize} networks of width {options.Width} over {_rows.Length} targets, in {_shards.Count} ranges of networks on kernel services");
        var watch = Stopwatch.StartNew();
        var done = new PartProgress(_shards.Count, options.PoolSize, networksDone);
        await Task.WhenAll(_shards.Select((range, shard) => _failover.OnAnyAsync(shard, async (endpoint, name, callOptions) =>
        {
            var held = await PoolOnAsync(endpoint, name, shard, callOptions, networks => done.Advance(shard, networks));
            log?.Invoke($"networks {range.Start}..{range.Start + range.Count - 1} on {endpoint.Address} ({held.Bytes / 1048576.0:F1} MiB, {watch.Elapsed.TotalSeconds:F0} s)");
            return held;
        }, cancellation)));
    }

    public async Task<PoolStepResult> StepAsync(PoolStepRequest request, CancellationToken cancellation)
    {
        var support = request.SupportImages.ToMessage(shape: [request.SupportImages.shape[0], .. imageShape]);
        if (_shards.Count == 1) return await WholeStepAsync(request, support, cancellation);

        var parts = _shards.Select((range, shard) => (Shard: shard, Networks: request.Networks.Where(m => m >= range.Start && m < range.Start + range.Count).ToArray()))
            .Where(part => part.Networks.Length > 0).ToArray();
        var products = await Task.WhenAll(parts.Select(part => OnShardAsync(part.Shard, async (endpoint, poolName, callOptions) =>
        {
            var message = new FeaturePoolProductsRequest
            {
                Pool = poolName, Support = support, Networks = { part.Networks }, Rows = { request.Rows }, KeepForGradient = true,
            };
            var response = await endpoint.Client.FeaturePoolProductsAsync(message, callOptions).ResponseAsync;
            return (response, response.ComputeTime);
        }, cancellation)));

        PooledProductsStep step;
        using (var supportProducts = Sum(products.Select(p => p.SupportProducts), "support_products"))
        using (var targetProducts = Sum(products.Select(p => p.TargetProducts), "target_products"))
        using (var index = tensor(request.Rows.Select(r => _rows[r]).ToArray(), device: data.TrainTargets.device))
        using (var targets = data.TrainTargets.index_select(0, index))
            step = PooledKernel.StepFromProducts(options.Kernel, request.Networks.Length, _featureCount, supportProducts, targetProducts,
                request, targets, options.Loss, options.Regularization);
        using (step)
        {
            var supportCotangent = step.SupportCotangent.ToMessage();
            var targetCotangent = step.TargetCotangent.ToMessage();
            // Each part's token lets its service reuse the pass it kept; a part that moved meanwhile computes it again.
            var gradients = await Task.WhenAll(parts.Select((part, i) => OnShardAsync(part.Shard, async (endpoint, poolName, callOptions) =>
            {
                var message = new FeaturePoolProductsGradientRequest
                {
                    Pool = poolName, Support = support, Networks = { part.Networks }, Rows = { request.Rows },
                    SupportCotangent = supportCotangent, TargetCotangent = targetCotangent, GradientToken = products[i].GradientToken,
                };
                var response = await endpoint.Client.FeaturePoolProductsGradientAsync(message, callOptions).ResponseAsync;
                return (response, response.ComputeTime);
            }, cancellation)));
            return new PoolStepResult
            {
                Loss = step.Loss, Correct = step.Correct, Count = step.Count, ScaleGradient = step.ScaleGradient,
                SupportGradient = Sum(gradients.Select(g => g.SupportGradient), "support_gradient", flatten: true),
                LabelGradient = step.LabelGradient?.clone(),
            };
        }
    }

    /// <summary>The whole step on the one service that holds every network.</summary>
    private async Task<PoolStepResult> WholeStepAsync(PoolStepRequest request, TensorMessage support, CancellationToken cancellation)
    {
        var message = new FeaturePoolStepRequest
        {
            Support = support, SupportLabels = request.SupportLabels.ToMessage(), Networks = { request.Networks }, Rows = { request.Rows },
            TotalTargets = request.TotalTargets, Loss = options.Loss.ToMessage(), Regularization = options.Regularization,
            WantLabelGradient = request.WantLabelGradient,
        };
        if (request.LogScale is { } scale) message.LogScale = scale;
        var response = await OnShardAsync(0, async (endpoint, poolName, callOptions) =>
        {
            message.Pool = poolName;
            var answer = await endpoint.Client.FeaturePoolStepAsync(message, callOptions).ResponseAsync;
            return (answer, answer.ComputeTime);
        }, cancellation);
        return response.ToResult();
    }

    /// <summary>A call on the range's pool (registered there first if need be), with failover; the call's compute time is recorded.</summary>
    private Task<T> OnShardAsync<T>(int shard, Func<KernelEndpoint, string, CallOptions, Task<(T Response, Duration? ComputeTime)>> call,
        CancellationToken cancellation) => _failover.OnAnyAsync(shard, async (endpoint, datasetName, callOptions) =>
    {
        var started = Stopwatch.GetTimestamp();
        (T Response, Duration? ComputeTime) result;
        try
        {
            result = await call(endpoint, (await PoolOnAsync(endpoint, datasetName, shard, callOptions)).Name, callOptions);
        }
        catch (RpcException e) when (KernelErrors.Reason(e) == ErrorReasons.FeaturePoolNotFound)
        {
            logger.LogInformation("{Address} no longer holds networks {Shard} of run {Run}'s feature pool; registering them again", endpoint.Address, shard, runName);
            _pools.TryRemove((endpoint.Address, shard), out _);
            result = await call(endpoint, (await PoolOnAsync(endpoint, datasetName, shard, callOptions)).Name, callOptions);
        }
        endpoint.Record(result.ComputeTime?.ToTimeSpan() ?? TimeSpan.Zero, Stopwatch.GetElapsedTime(started), runName, time.GetUtcNow());
        return result.Response;
    }, cancellation);

    /// <summary>
    /// The range's pool on this service: the one registered before, or registered now (which can
    /// take minutes; <paramref name="networksDone"/> hears the range's networks as they are stored).
    /// </summary>
    private async Task<FeaturePool> PoolOnAsync(KernelEndpoint endpoint, string datasetName, int shard, CallOptions callOptions,
        Action<int>? networksDone = null)
    {
        if (_pools.TryGetValue((endpoint.Address, shard), out var known)) return known.Pool;
        var (start, count) = _shards[shard];
        var request = new RegisterFeaturePoolRequest
        {
            Networks = (options.Kernel with { RandomFeatures = new(options.PoolSize, options.Width, options.NetworkSeed) }).ToMessage().RandomFeatures,
            NetworkRange = new IndexRange { Start = start, Count = count },
            Targets = new DatasetRows { Dataset = datasetName, Split = Split.Train, Indices = { _rows } },
            FeatureType = options.FeatureType == ScalarType.Float64 ? DataType.Float64 : DataType.Float32,
            LeaseTtl = Duration.FromTimeSpan(TimeSpan.FromSeconds(settings.DatasetLeaseSeconds)),
        };
        var registered = await ProgressStream.ReadToResultAsync(
            endpoint.Client.StreamRegisterFeaturePool(new StreamRegisterFeaturePoolRequest { Registration = request },
                callOptions.WithDeadline(DateTime.UtcNow.AddSeconds(settings.FeaturePoolTimeoutSeconds))),
            update => update.Pool, update => networksDone?.Invoke(update.Progress?.NetworksDone ?? 0), callOptions.CancellationToken);
        logger.LogInformation("Registered networks {Start}..{End} of run {Run}'s feature pool on {Address} as {Name} ({Seconds:F1} s)",
            start, start + count - 1, runName, endpoint.Address, registered.Name, registered.ComputeTime?.ToTimeSpan().TotalSeconds ?? 0);
        _pools[(endpoint.Address, shard)] = (endpoint, registered);
        _shardBytes[shard] = registered.Bytes;
        return registered;
    }

    /// <summary>The parts' tensors summed in shard order, float64 (n x d when <paramref name="flatten"/>).</summary>
    private static Tensor Sum(IEnumerable<TensorMessage> parts, string field, bool flatten = false)
    {
        Tensor? total = null;
        foreach (var part in parts)
        {
            using var t = part.ToTorch(field, allowNonFinite: true);
            if (total is null) total = (flatten ? t.reshape(t.shape[0], -1) : t).to_type(ScalarType.Float64, copy: true);
            else total.add_(flatten ? t.reshape(t.shape[0], -1) : t, One);
        }
        return total!;
    }

    /// <summary>Drops the run's pools where they were registered, without waiting: a service that is away lets the lease end them.</summary>
    public void Dispose()
    {
        foreach (var (endpoint, held) in _pools.Values)
            _ = pool.DropFeaturePoolAsync(endpoint, held.Name);
        _pools.Clear();
    }
}
