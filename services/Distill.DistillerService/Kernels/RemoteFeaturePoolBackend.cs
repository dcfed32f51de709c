using System.Collections.Concurrent;
using System.Diagnostics;
using Distill.Adapters.Clients;
using Distill.Adapters.Conversions;
using Distill.Core.Errors;
using Distill.Core.FeaturePool;
using Distill.DistillerService.Configuration;
using Distill.Protos.Kernel.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using PoolLoss = Distill.Core.FeaturePool.PoolLoss;

namespace Distill.DistillerService.Kernels;

/// <summary>
/// A feature pool sharded over kernel services: the target subset is cut into one contiguous
/// shard per service, each registered as a pool on its service, and a step's target rows go to
/// the shards that hold them, whose results are summed in shard order. A shard whose service
/// is away moves to the next one (<see cref="KernelFailover"/>), which registers that shard
/// first: a pool is a pure function of the options and rows, so any service computes the same
/// features. A service that lost a pool (restart, lease) gets it registered again.
/// </summary>
public sealed class RemoteFeaturePoolBackend(
    KernelServicePool pool,
    DatasetReference dataset,
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
    private long[] _rows = [];
    private List<(int Start, int Count)> _shards = [];
    private long[] _shardBytes = [];

    public long BufferBytes => _shardBytes.Sum();

    public async Task PrepareAsync(IReadOnlyList<long> targetRows, Action<string>? log, CancellationToken cancellation)
    {
        if (options.FreshNetworks)
            throw new InvalidFieldException("feature_pool", "fresh networks every step are computed in one process; kernel services hold a fixed pool");
        _rows = targetRows.ToArray();
        _shards = KernelFailover.Shards(_rows.Length, Math.Max(1, pool.Endpoints.Count));
        _shardBytes = new long[_shards.Count];
        log?.Invoke($"feature pool: {options.PoolSize} networks of width {options.Width} over {_rows.Length} targets, in {_shards.Count} shards on kernel services");
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(_shards.Select((range, shard) => _failover.OnAnyAsync(shard, async (endpoint, name, callOptions) =>
        {
            var held = await PoolOnAsync(endpoint, name, shard, callOptions);
            log?.Invoke($"shard {shard + 1}/{_shards.Count}: {range.Count} targets on {endpoint.Address} ({held.Bytes / 1048576.0:F1} MiB, {watch.Elapsed.TotalSeconds:F0} s)");
            return held;
        }, cancellation)));
    }

    public async Task<PoolStepResult> StepAsync(PoolStepRequest request, CancellationToken cancellation)
    {
        var support = request.SupportImages.ToMessage(shape: [request.SupportImages.shape[0], .. imageShape]);
        var labels = request.SupportLabels.ToMessage();
        var parts = _shards.Select((range, shard) => (Shard: shard, Positions: request.Rows
                .Where(row => row >= range.Start && row < range.Start + range.Count).Select(row => row - range.Start).ToArray()))
            .Where(part => part.Positions.Length > 0).ToArray();
        var calls = parts.Select(part => _failover.OnAnyAsync(part.Shard, async (endpoint, name, callOptions) =>
        {
            var step = new FeaturePoolStepRequest
            {
                Support = support, SupportLabels = labels, Networks = { request.Networks }, Rows = { part.Positions },
                TotalTargets = request.TotalTargets, Loss = options.Loss.ToMessage(), Regularization = options.Regularization,
                WantLabelGradient = request.WantLabelGradient,
            };
            if (request.LogScale is { } scale) step.LogScale = scale;
            var started = Stopwatch.GetTimestamp();
            FeaturePoolStepResponse response;
            try
            {
                step.Pool = (await PoolOnAsync(endpoint, name, part.Shard, callOptions)).Name;
                response = await endpoint.Client.FeaturePoolStepAsync(step, callOptions).ResponseAsync;
            }
            catch (RpcException e) when (KernelErrors.Reason(e) == ErrorReasons.FeaturePoolNotFound)
            {
                logger.LogInformation("{Address} no longer holds shard {Shard} of run {Run}'s feature pool; registering it again", endpoint.Address, part.Shard, runName);
                _pools.TryRemove((endpoint.Address, part.Shard), out _);
                step.Pool = (await PoolOnAsync(endpoint, name, part.Shard, callOptions)).Name;
                response = await endpoint.Client.FeaturePoolStepAsync(step, callOptions).ResponseAsync;
            }
            endpoint.Record(response.ComputeTime?.ToTimeSpan() ?? TimeSpan.Zero, Stopwatch.GetElapsedTime(started), runName, time.GetUtcNow());
            return response.ToResult();
        }, cancellation)).ToArray();
        try
        {
            await Task.WhenAll(calls);
        }
        catch
        {
            foreach (var call in calls)
                if (call.IsCompletedSuccessfully) call.Result.Dispose();
            throw;
        }
        // Summed in shard order, whichever service computed each shard.
        var total = calls[0].Result;
        foreach (var next in calls.Skip(1).Select(c => c.Result))
        {
            total.Add(next);
            next.Dispose();
        }
        return total;
    }

    /// <summary>The shard's pool on this service: the one registered before, or registered now (which can take minutes).</summary>
    private async Task<FeaturePool> PoolOnAsync(KernelEndpoint endpoint, string datasetName, int shard, CallOptions callOptions)
    {
        if (_pools.TryGetValue((endpoint.Address, shard), out var known)) return known.Pool;
        var (start, count) = _shards[shard];
        var request = new RegisterFeaturePoolRequest
        {
            Networks = (options.Kernel with { RandomFeatures = new(options.PoolSize, options.Width, options.NetworkSeed) }).ToMessage().RandomFeatures,
            Targets = new DatasetRows { Dataset = datasetName, Split = Split.Train, Indices = { _rows.Skip(start).Take(count) } },
            FeatureType = options.FeatureType == TorchSharp.torch.ScalarType.Float64 ? DataType.Float64 : DataType.Float32,
            LeaseTtl = Duration.FromTimeSpan(TimeSpan.FromSeconds(settings.DatasetLeaseSeconds)),
        };
        var registered = await endpoint.Client.RegisterFeaturePoolAsync(request,
            callOptions.WithDeadline(DateTime.UtcNow.AddSeconds(settings.FeaturePoolTimeoutSeconds))).ResponseAsync;
        logger.LogInformation("Registered shard {Shard} of run {Run}'s feature pool on {Address} as {Name} ({Seconds:F1} s)",
            shard, runName, endpoint.Address, registered.Name, registered.ComputeTime?.ToTimeSpan().TotalSeconds ?? 0);
        _pools[(endpoint.Address, shard)] = (endpoint, registered);
        _shardBytes[shard] = registered.Bytes;
        return registered;
    }

    /// <summary>Drops the run's pools where they were registered, without waiting: a service that is away lets the lease end them.</summary>
    public void Dispose()
    {
        foreach (var (endpoint, held) in _pools.Values)
            _ = pool.DropFeaturePoolAsync(endpoint, held.Name);
        _pools.Clear();
    }
}
