using System.Collections.Concurrent;
using Distill.Core.Errors;
using Distill.KernelService.Configuration;
using Distill.KernelService.Leases;
using Microsoft.Extensions.Options;

namespace Distill.KernelService.FeaturePools;

/// <summary>
/// The feature pools this server holds, by name, within KernelService:MaxFeaturePoolBytes.
/// A pool's name is a function of what it holds, so registering the same pool again (a
/// client that lost track, or a shard moved here from a service that went away) returns the
/// held one, and concurrent registrations of one pool compute it once. Leases as for datasets.
/// </summary>
public sealed class FeaturePoolRegistry(IOptions<KernelServiceOptions> options, TimeProvider time) : IDisposable
{
    public const string BudgetSetting = "KernelService:MaxFeaturePoolBytes";

    private static readonly LeaseKind Kind = new("feature pool", HeldFeaturePool.NamePrefix, "distill.kernel.v1.FeaturePool",
        ErrorReasons.FeaturePoolNotFound, BudgetSetting, ErrorReasons.FeaturePoolBudgetExceeded, bytes => $"{bytes / (1 << 20)} MiB");

    private readonly LeaseRegistry<HeldFeaturePool> _pools = new(Kind, () => options.Value.MaxFeaturePoolBytes, time);
    private readonly ConcurrentDictionary<string, Lazy<HeldFeaturePool>> _computing = new();

    public long Bytes => _pools.Used;
    public int Count => _pools.All.Count;

    /// <summary>
    /// The pool with this id: the held one, or one that <paramref name="compute"/> makes after
    /// <paramref name="bytes"/> have been reserved against the budget. Returns it and whether it was computed now.
    /// </summary>
    public (HeldFeaturePool Pool, bool Computed) Register(string id, long bytes, Func<HeldFeaturePool> compute)
    {
        if (_pools.Find(id) is { } held) return (held, false);
        var computing = _computing.GetOrAdd(id, _ => new Lazy<HeldFeaturePool>(() => Compute(bytes, compute)));
        try
        {
            return (computing.Value, true);
        }
        finally
        {
            _computing.TryRemove(new KeyValuePair<string, Lazy<HeldFeaturePool>>(id, computing));
        }
    }

    private HeldFeaturePool Compute(long bytes, Func<HeldFeaturePool> compute)
    {
        _pools.Reserve(bytes);
        HeldFeaturePool pool;
        try
        {
            pool = compute();
        }
        catch
        {
            _pools.CancelReservation(bytes);
            throw;
        }
        return _pools.Add(pool, reserved: bytes);
    }

    /// <summary>The pool a request names, held for reading until the returned use is disposed.</summary>
    public ResourceUse<HeldFeaturePool> Use(string name, string field) => _pools.Use(name, field);

    public void Drop(string name, string field) => _pools.Drop(name, field);

    public void Dispose() => _pools.Dispose();
}
