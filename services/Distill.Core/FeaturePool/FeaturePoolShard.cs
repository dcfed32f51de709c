using Distill.Core.Errors;
using Distill.Core.Kernels;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// The pool's networks and the stored features of some target images under every one of them:
/// the whole target subset in this process, or one shard of it on a kernel service. A step
/// over rows of the shard runs only the support through the sampled networks.
/// </summary>
public sealed class FeaturePoolShard : IDisposable
{
    private readonly List<List<(Tensor Weight, Tensor Bias)>> _networks;

    private FeaturePoolShard(RandomFeatureConvKernel source, List<List<(Tensor Weight, Tensor Bias)>> networks, NetworkFeatureBuffer buffer)
    {
        Source = source;
        _networks = networks;
        Buffer = buffer;
    }

    public RandomFeatureConvKernel Source { get; }
    public NetworkFeatureBuffer Buffer { get; }
    public ScalarType FeatureType => Buffer.Features.dtype;
    public long Bytes => Buffer.Bytes;

    /// <summary>
    /// Features of <paramref name="images"/> (n x d) under every network of <paramref name="source"/>;
    /// refuses a buffer over <paramref name="maxBytes"/> (naming <paramref name="field"/>) before computing.
    /// </summary>
    public static FeaturePoolShard Compute(RandomFeatureConvKernel source, Tensor images, Tensor targets, int[] labels, ScalarType type,
        long maxBytes, Action<int, int>? progress = null, string field = "feature_buffer_mb")
    {
        var buffer = NetworkFeatureBuffer.Compute(source, source.Networks, images, targets, labels, type, maxBytes, progress, field);
        // Held until disposed, whatever dispose scope the caller computes in.
        buffer.Features.DetachFromDisposeScope();
        buffer.Targets.DetachFromDisposeScope();
        var networks = new List<List<(Tensor Weight, Tensor Bias)>>();
        for (int m = 0; m < source.Networks; m++)
        {
            var network = source.DrawNetwork(m, type, images.device);
            foreach (var (w, b) in network) { w.DetachFromDisposeScope(); b.DetachFromDisposeScope(); }
            networks.Add(network);
        }
        return new FeaturePoolShard(source, networks, buffer);
    }

    /// <summary>The step's share from this shard's rows <see cref="PoolStepRequest.Rows"/> (positions in the shard).</summary>
    public PoolStepResult Step(PoolStepRequest request, PoolLoss loss, double regularization)
    {
        foreach (var m in request.Networks)
            if (m < 0 || m >= _networks.Count)
                throw new InvalidFieldException("networks", $"network {m} is not in the pool of {_networks.Count}");
        foreach (var row in request.Rows)
            if (row < 0 || row >= Buffer.Count)
                throw new InvalidFieldException("rows", $"row {row} is not in the pool's {Buffer.Count} targets");
        if (request.TotalTargets < request.Rows.Length)
            throw new InvalidFieldException("total_targets", $"{request.TotalTargets} is fewer than the {request.Rows.Length} rows of this part");
        using var scope = NewDisposeScope();
        var rows = tensor(request.Rows, device: Buffer.Features.device);
        var targetFeatures = request.Networks.Select(m => Buffer.Rows(m, rows)).ToList();
        var result = PooledKernel.Step(Source, request.Networks.Select(m => _networks[m]).ToList(), request, targetFeatures,
            Buffer.Targets.index_select(0, rows), loss, regularization, FeatureType);
        result.SupportGradient.MoveToOuterDisposeScope();
        result.LabelGradient?.MoveToOuterDisposeScope();
        return result;
    }

    public void Dispose()
    {
        foreach (var network in _networks)
            foreach (var (w, b) in network) { w.Dispose(); b.Dispose(); }
        Buffer.Dispose();
    }
}
