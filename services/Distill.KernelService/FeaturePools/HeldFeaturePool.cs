using Distill.Core.FeaturePool;
using Distill.KernelService.Leases;
using Distill.Protos.Kernel.V1;
using Google.Protobuf.WellKnownTypes;

namespace Distill.KernelService.FeaturePools;

/// <summary>A feature pool held by the service: a run's targets under the pool's networks, or a range of them.</summary>
public sealed class HeldFeaturePool(string id, string dataset, int classCount, IReadOnlyList<long> imageShape, FeaturePoolShard shard) : LeasedResource
{
    public const string NamePrefix = "featurePools/";

    public override string Id { get; } = id;
    public string Name => NamePrefix + Id;
    /// <summary>The name of the dataset the targets came from.</summary>
    public string Dataset { get; } = dataset;
    public int ClassCount { get; } = classCount;
    public IReadOnlyList<long> ImageShape { get; } = imageShape;
    public FeaturePoolShard Shard { get; } = shard;
    // Kept as values: the budget is settled after the tensors may be gone.
    public long Bytes { get; } = shard.Bytes;
    public override long Footprint => Bytes;
    public int Networks { get; } = shard.NetworkCount;
    public int FirstNetwork { get; } = shard.FirstNetwork;
    public long TargetCount { get; } = shard.Buffer.Count;
    public long FeatureCount { get; } = shard.Buffer.FeatureCount;

    private readonly Lock _pendingLock = new();
    private (string Token, PendingProducts Products)? _pending;

    /// <summary>Keeps a products round's graph for the gradient round, in place of any kept before; returns its token.</summary>
    public string Keep(PendingProducts products)
    {
        var token = Guid.NewGuid().ToString("N");
        lock (_pendingLock)
        {
            _pending?.Products.Dispose();
            _pending = (token, products);
        }
        return token;
    }

    /// <summary>The graph kept under this token, handed over to the caller (null: not kept, or no longer).</summary>
    public PendingProducts? Take(string token)
    {
        lock (_pendingLock)
        {
            if (string.IsNullOrEmpty(token) || _pending is not { } pending || pending.Token != token) return null;
            _pending = null;
            return pending.Products;
        }
    }

    protected override void Free()
    {
        lock (_pendingLock)
        {
            _pending?.Products.Dispose();
            _pending = null;
        }
        Shard.Dispose();
    }

    public FeaturePool ToMessage(TimeSpan computeTime) => new()
    {
        Name = Name, Dataset = Dataset, Networks = Networks, FirstNetwork = FirstNetwork, TargetCount = TargetCount, FeatureCount = FeatureCount, Bytes = Bytes,
        ComputeTime = Duration.FromTimeSpan(computeTime),
        ExpireTime = ExpireTime is { } expire ? Timestamp.FromDateTimeOffset(expire) : null,
    };
}
