using Distill.Core.Errors;
using Distill.Core.Kernels;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// Some of a pool's networks (all, or a contiguous range of them on one kernel service) and the
/// stored features of the target images under each. Network indices in requests are the pool's
/// own (0..P-1); rows are positions in the stored targets. A step runs only the support through
/// the sampled networks.
/// </summary>
public sealed class FeaturePoolShard : IDisposable
{
    private readonly List<List<(Tensor Weight, Tensor Bias)>> _networks;

    private FeaturePoolShard(RandomFeatureConvKernel source, int firstNetwork, List<List<(Tensor Weight, Tensor Bias)>> networks, NetworkFeatureBuffer buffer)
    {
        Source = source;
        FirstNetwork = firstNetwork;
        _networks = networks;
        Buffer = buffer;
    }

    public RandomFeatureConvKernel Source { get; }
    /// <summary>The pool index of the first network held; the others follow it.</summary>
    public int FirstNetwork { get; }
    public int NetworkCount => _networks.Count;
    public NetworkFeatureBuffer Buffer { get; }
    public ScalarType FeatureType => Buffer.Features.dtype;
    public long Bytes => Buffer.Bytes;

    /// <summary>
    /// Features of <paramref name="images"/> (n x d) under networks <paramref name="first"/>.. of
    /// <paramref name="source"/> (<paramref name="count"/> of them; null: to the last); refuses a
    /// buffer over <paramref name="maxBytes"/> (naming <paramref name="field"/>) before computing.
    /// </summary>
    public static FeaturePoolShard Compute(RandomFeatureConvKernel source, Tensor images, Tensor targets, ScalarType type,
        long maxBytes, Action<int, int>? progress = null, string field = "feature_buffer_mb", int first = 0, int? count = null)
    {
        int networkCount = count ?? source.Networks - first;
        if (first < 0 || networkCount < 1 || first + networkCount > source.Networks)
            throw new InvalidFieldException("network_range", $"[{first}, {first + networkCount}) is not a range of the pool's {source.Networks} networks");
        var buffer = NetworkFeatureBuffer.Compute(source, networkCount, images, targets, type, maxBytes, progress, field, first);
        // Held until disposed, whatever dispose scope the caller computes in.
        buffer.Features.DetachFromDisposeScope();
        buffer.Targets.DetachFromDisposeScope();
        var networks = new List<List<(Tensor Weight, Tensor Bias)>>();
        for (int m = first; m < first + networkCount; m++)
        {
            var network = source.DrawNetwork(m, type, images.device);
            foreach (var (w, b) in network) { w.DetachFromDisposeScope(); b.DetachFromDisposeScope(); }
            networks.Add(network);
        }
        return new FeaturePoolShard(source, first, networks, buffer);
    }

    /// <summary>The step's share from rows <see cref="PoolStepRequest.Rows"/>; every sampled network must be held here.</summary>
    public PoolStepResult Step(PoolStepRequest request, PoolLoss loss, double regularization)
    {
        var local = Check(request.Networks, request.Rows);
        if (request.TotalTargets < request.Rows.Length)
            throw new InvalidFieldException("total_targets", $"{request.TotalTargets} is fewer than the {request.Rows.Length} rows of this part");
        using var scope = NewDisposeScope();
        var rows = tensor(request.Rows, device: Buffer.Features.device);
        var targetFeatures = local.Select(m => Buffer.Rows(m, rows)).ToList();
        var result = PooledKernel.Step(Source, local.Select(m => _networks[m]).ToList(), request, targetFeatures,
            Buffer.Targets.index_select(0, rows), loss, regularization, FeatureType);
        result.SupportGradient.MoveToOuterDisposeScope();
        result.LabelGradient?.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>
    /// This part's sums over the sampled networks it holds of phi(X_s) phi(X_s)^T (n_s x n_s) and
    /// phi(X_t) phi(X_s)^T (rows x n_s), float64, with the graph behind them kept for the gradient
    /// round (<see cref="PooledKernel.StepFromProducts"/> gives the cotangents).
    /// </summary>
    public PendingProducts Products(Tensor support, int[] networks, long[] rows)
    {
        var local = Check(networks, rows);
        using var scope = NewDisposeScope();
        var xs = support.detach().to_type(ScalarType.Float64).requires_grad_(true);
        var (supportFeatures, targetFeatures) = Features(xs, local, rows);
        var supportProducts = PooledKernel.Products(supportFeatures, supportFeatures);
        var targetProducts = PooledKernel.Products(targetFeatures, supportFeatures);
        // The graph's saved activations stay alive through these three; the rest may go with the scope.
        return new PendingProducts(xs.DetachFromDisposeScope(), supportProducts.DetachFromDisposeScope(), targetProducts.DetachFromDisposeScope(),
            rows.Length);
    }

    /// <summary>The support gradient of <see cref="Products"/> for these cotangents, the forward pass computed afresh.</summary>
    public Tensor ProductsGradient(Tensor support, int[] networks, long[] rows, Tensor supportCotangent, Tensor targetCotangent)
    {
        using var products = Products(support, networks, rows);
        return products.Gradient(supportCotangent, targetCotangent);
    }

    private (List<Tensor> Support, List<Tensor> Targets) Features(Tensor support, int[] local, long[] rows)
    {
        var x = support.to_type(FeatureType);
        var index = tensor(rows, device: Buffer.Features.device);
        return (local.Select(m => Source.NetworkFeatures(_networks[m], x)).ToList(), local.Select(m => Buffer.Rows(m, index)).ToList());
    }

    /// <summary>The networks as indices into this part's own, after checking them and the rows.</summary>
    private int[] Check(int[] networks, long[] rows)
    {
        foreach (var m in networks)
            if (m < FirstNetwork || m >= FirstNetwork + _networks.Count)
                throw new InvalidFieldException("networks", $"network {m} is not among the pool's networks held here, {FirstNetwork} to {FirstNetwork + _networks.Count - 1}");
        foreach (var row in rows)
            if (row < 0 || row >= Buffer.Count)
                throw new InvalidFieldException("rows", $"row {row} is not in the pool's {Buffer.Count} targets");
        return networks.Select(m => m - FirstNetwork).ToArray();
    }

    public void Dispose()
    {
        foreach (var network in _networks)
            foreach (var (w, b) in network) { w.Dispose(); b.Dispose(); }
        Buffer.Dispose();
    }
}

/// <summary>
/// A part's feature products and the autograd graph from the support to them: the gradient
/// round needs no second pass through the networks while this is kept. Usable once.
/// </summary>
public sealed class PendingProducts(Tensor support, Tensor supportProducts, Tensor targetProducts, long rows) : IDisposable
{
    /// <summary>sum_m phi_m(X_s) phi_m(X_s)^T, n_s x n_s (with its graph; read it without gradient).</summary>
    public Tensor SupportProducts { get; } = supportProducts;
    /// <summary>sum_m phi_m(X_t) phi_m(X_s)^T, rows x n_s.</summary>
    public Tensor TargetProducts { get; } = targetProducts;

    /// <summary>d/dX_s of sum(supportCotangent o support products) + sum(targetCotangent o target products), n_s x d float64.</summary>
    public Tensor Gradient(Tensor supportCotangent, Tensor targetCotangent)
    {
        long n = support.shape[0];
        if (supportCotangent.shape.Length != 2 || supportCotangent.shape[0] != n || supportCotangent.shape[1] != n)
            throw new InvalidFieldException("support_cotangent", $"must be {n} x {n}");
        if (targetCotangent.shape.Length != 2 || targetCotangent.shape[0] != rows || targetCotangent.shape[1] != n)
            throw new InvalidFieldException("target_cotangent", $"must be {rows} x {n}");
        using var scope = NewDisposeScope();
        var value = SupportProducts.mul(supportCotangent).sum().add(TargetProducts.mul(targetCotangent).sum(), One);
        return autograd.grad([value], [support])[0].MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        SupportProducts.Dispose();
        TargetProducts.Dispose();
        support.Dispose();
    }
}
