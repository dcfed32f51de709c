namespace Distill.KernelService.Leases;

/// <summary>
/// Something a server holds for its clients (a dataset, a feature pool) whose memory is freed
/// only when it has been released (dropped, or its lease expired) and no call reads it any
/// more, so a drop never pulls data from under a running computation. The lease runs from the
/// last use, so a resource in steady use never expires.
/// </summary>
public abstract class LeasedResource
{
    private readonly Lock _uses = new();
    private int _readers;
    private bool _released;
    private bool _freed;

    /// <summary>The id its name ends with.</summary>
    public abstract string Id { get; }
    /// <summary>What it counts against its registry's budget; kept as a value, for it is settled after the memory may be gone.</summary>
    public abstract long Footprint { get; }
    public DateTimeOffset CreateTime { get; init; }
    public TimeSpan? LeaseTtl { get; init; }
    public DateTimeOffset? ExpireTime { get; private set; }

    /// <summary>Frees the resource's memory; called once, after release, with no reader left.</summary>
    protected abstract void Free();

    /// <summary>A call starts reading it: false when it is already released.</summary>
    internal bool TryAcquire(DateTimeOffset now)
    {
        lock (_uses)
        {
            if (_released) return false;
            _readers++;
            Renew(now);
            return true;
        }
    }

    /// <summary>A call is done with it; the last reader of a released resource frees it.</summary>
    internal void ReleaseReader(DateTimeOffset now)
    {
        lock (_uses)
        {
            _readers--;
            Renew(now);
            FreeIfUnused();
        }
    }

    internal void Renew(DateTimeOffset now)
    {
        if (LeaseTtl is { } ttl) ExpireTime = now + ttl;
    }

    /// <summary>True when the lease has run out and no call reads it.</summary>
    internal bool IsExpired(DateTimeOffset now)
    {
        lock (_uses) return _readers == 0 && ExpireTime is { } expire && expire <= now;
    }

    /// <summary>No new reader may start; the memory goes when the last current reader ends.</summary>
    internal void Release()
    {
        lock (_uses)
        {
            _released = true;
            FreeIfUnused();
        }
    }

    private void FreeIfUnused()
    {
        if (!_released || _readers > 0 || _freed) return;
        _freed = true;
        Free();
    }
}

/// <summary>A call's hold on a leased resource: it stays allocated until this is disposed.</summary>
public sealed class ResourceUse<T>(T resource, TimeProvider time) : IDisposable where T : LeasedResource
{
    private int _disposed;

    public T Resource { get; } = resource;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Resource.ReleaseReader(time.GetUtcNow());
    }
}
