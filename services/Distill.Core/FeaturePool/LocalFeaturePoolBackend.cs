using System.Diagnostics;
using Distill.Core.Data;
using Distill.Core.Evaluation;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// The feature pool in this process: one <see cref="FeaturePoolShard"/> over the whole target
/// subset, or, in RFAD's mode (<see cref="FeaturePoolOptions.FreshNetworks"/>), the step's fresh
/// networks run on the step's target images each time. Completes synchronously.
/// </summary>
public sealed class LocalFeaturePoolBackend(PreparedDataset data, FeaturePoolOptions options) : IFeaturePoolBackend
{
    private long[] _rows = [];

    /// <summary>The stored target features (null in RFAD's mode, or before <see cref="PrepareAsync"/>).</summary>
    public FeaturePoolShard? Shard { get; private set; }

    public long BufferBytes => Shard?.Bytes ?? 0;

    public Task PrepareAsync(IReadOnlyList<long> targetRows, Action<string>? log, Action<RowsDone>? networksDone, CancellationToken cancellation)
    {
        _rows = targetRows.ToArray();
        if (options.FreshNetworks) return Task.CompletedTask;
        var pool = options.PoolNetworks();
        log?.Invoke($"feature pool: {options.PoolSize} networks of width {options.Width}, {_rows.Length} target images x {pool.FeatureCount} features: buffer {NetworkFeatureBuffer.SizeOf(options.PoolSize, _rows.Length, pool.FeatureCount, options.FeatureType) / (1 << 20)} MiB ({options.FeatureType})");
        using var scope = NewDisposeScope();
        var index = tensor(_rows, device: data.TrainImages.device);
        var watch = Stopwatch.StartNew();
        Shard = FeaturePoolShard.Compute(pool, data.TrainImages.index_select(0, index), data.TrainTargets.index_select(0, index),
            options.FeatureType, options.MaxBufferBytes,
            ProgressLog("target", watch, log) + (networksDone is null ? null : (done, total) => networksDone(new RowsDone(done, total))));
        return Task.CompletedTask;
    }

    public Task<PoolStepResult> StepAsync(PoolStepRequest request, CancellationToken cancellation)
    {
        if (Shard is not null) return Task.FromResult(Shard.Step(request, options.Loss, options.Regularization));
        if (!options.FreshNetworks) throw new InvalidOperationException("the feature pool is not prepared");
        using var scope = NewDisposeScope();
        var type = options.FeatureType;
        var device = data.TrainImages.device;
        var source = options.FreshNetworksAt(request.Step);
        var networks = request.Networks.Select(m => source.DrawNetwork(m, type, device)).ToList();
        var indices = tensor(request.Rows.Select(j => _rows[j]).ToArray(), device: device);
        var images = data.TrainImages.index_select(0, indices).to_type(type);
        List<Tensor> targetFeatures;
        using (no_grad()) targetFeatures = networks.Select(n => source.NetworkFeatures(n, images)).ToList();
        var result = PooledKernel.Step(source, networks, request, targetFeatures, data.TrainTargets.index_select(0, indices),
            options.Loss, options.Regularization, type);
        result.SupportGradient.MoveToOuterDisposeScope();
        result.LabelGradient?.MoveToOuterDisposeScope();
        return Task.FromResult(result);
    }

    /// <summary>A progress callback that logs about eight times while features are computed.</summary>
    internal static Action<int, int> ProgressLog(string what, Stopwatch watch, Action<string>? log) => (done, total) =>
    {
        if (done == total || done % Math.Max(1, total / 8) == 0)
            log?.Invoke($"{what} features: {done}/{total} networks ({watch.Elapsed.TotalSeconds:F0} s)");
    };

    public void Dispose() => Shard?.Dispose();
}
