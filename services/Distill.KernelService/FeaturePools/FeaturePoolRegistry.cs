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
/// held one, and concurrent registrations of one pool compute it once. Leases as for datasets:
/// expiry is checked on every access.
/// </summary>
public sealed class FeaturePoolRegistry(IOptions<KernelServiceOptions> options, TimeProvider time) : IDisposable
{
    public const string BudgetSetting = "KernelService:MaxFeaturePoolBytes";

    private readonly ConcurrentDictionary<string, HeldFeaturePool> _pools = new();
    private readonly ConcurrentDictionary<string, Lazy<HeldFeaturePool>> _computing = new();
    private readonly Lock _budget = new();
    private long _bytes;

    public long Bytes => Interlocked.Read(ref _bytes);

    public int Count
    {
        get
        {
            DropExpired();
            return _pools.Count;
        }
    }

    /// <summary>
    /// The pool with this id: the held one, or one that <paramref name="compute"/> makes after
    /// <paramref name="bytes"/> have been reserved against the budget. Returns it and whether it was computed now.
    /// </summary>
    public (HeldFeaturePool Pool, bool Computed) Register(string id, long bytes, Func<HeldFeaturePool> compute)
    {
        DropExpired();
        if (_pools.TryGetValue(id, out var held) && held.TryAcquire(time.GetUtcNow()))
        {
            held.ReleaseReader(time.GetUtcNow());
            return (held, false);
        }
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
        lock (_budget)
        {
            var limit = options.Value.MaxFeaturePoolBytes;
            if (_bytes + bytes > limit)
                throw new LimitExceededException(ErrorReasons.FeaturePoolBudgetExceeded, BudgetSetting,
                    $"a feature pool of {bytes / (1 << 20)} MiB exceeds the server's feature pool budget ({(limit - _bytes) / (1 << 20)} of {limit / (1 << 20)} MiB left); drop a pool first");
            _bytes += bytes;
        }
        HeldFeaturePool pool;
        try
        {
            pool = compute();
        }
        catch
        {
            lock (_budget) _bytes -= bytes;
            throw;
        }
        // The reservation becomes the pool's own size.
        lock (_budget) _bytes += pool.Bytes - bytes;
        pool.Renew(time.GetUtcNow());
        _pools[pool.Id] = pool;
        return pool;
    }

    /// <summary>The pool a request names, held for reading until the returned use is disposed.</summary>
    public ResourceUse<HeldFeaturePool> Use(string name, string field)
    {
        DropExpired();
        if (string.IsNullOrEmpty(name)) throw new InvalidFieldException(field, "required (featurePools/{id})");
        var id = name.StartsWith(HeldFeaturePool.NamePrefix, StringComparison.Ordinal) ? name[HeldFeaturePool.NamePrefix.Length..] : null;
        if (id is null) throw new InvalidFieldException(field, $"'{name}' is not a feature pool name (featurePools/{{id}})");
        if (_pools.TryGetValue(id, out var pool) && pool.TryAcquire(time.GetUtcNow()))
            return new ResourceUse<HeldFeaturePool>(pool, time);
        throw new ResourceNotFoundException("distill.kernel.v1.FeaturePool", name, ErrorReasons.FeaturePoolNotFound,
            $"{field}: no feature pool '{name}' (it may have been dropped, its lease may have expired, or the server restarted; register it again)");
    }

    public void Drop(string name, string field)
    {
        using (var use = Use(name, field)) Remove(use.Resource);
    }

    private void Remove(HeldFeaturePool pool)
    {
        if (!_pools.TryRemove(new KeyValuePair<string, HeldFeaturePool>(pool.Id, pool))) return;
        lock (_budget) _bytes -= pool.Bytes;
        pool.Release();
    }

    private void DropExpired()
    {
        var now = time.GetUtcNow();
        foreach (var pool in _pools.Values)
            if (pool.IsExpired(now)) Remove(pool);
    }

    public void Dispose()
    {
        foreach (var pool in _pools.Values) Remove(pool);
    }
}
