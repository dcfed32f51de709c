using System.Collections.Concurrent;
using Distill.Core.Errors;

namespace Distill.KernelService.Leases;

/// <summary>
/// What a <see cref="LeaseRegistry{T}"/> holds, for its names and errors: the noun ("dataset"),
/// the name prefix ("datasets/"), the resource type and reasons of its errors, the setting
/// that bounds the total footprint, and how an amount of that footprint reads ("12 MiB").
/// </summary>
public sealed record LeaseKind(string Noun, string NamePrefix, string ResourceType, string NotFoundReason,
    string BudgetSetting, string BudgetReason, Func<long, string> Amount);

/// <summary>
/// Resources a server holds for its clients by name, within a budget on their summed
/// footprint. Leases expire lazily: every access first drops the resources whose lease has run
/// out, so nothing needs a timer and a client that dies leaks nothing.
/// </summary>
public sealed class LeaseRegistry<T>(LeaseKind kind, Func<long> limit, TimeProvider time) : IDisposable where T : LeasedResource
{
    private readonly ConcurrentDictionary<string, T> _held = new();
    private readonly Lock _budget = new();
    private long _used;

    /// <summary>The footprint held or reserved now.</summary>
    public long Used => Interlocked.Read(ref _used);

    /// <summary>The budget left once expired leases are dropped.</summary>
    public long Left
    {
        get
        {
            DropExpired();
            return Math.Max(0, limit() - Used);
        }
    }

    public IReadOnlyCollection<T> All
    {
        get
        {
            DropExpired();
            return _held.Values.ToArray();
        }
    }

    /// <summary>The held resource with this id, renewed, when there is one that is not released.</summary>
    public T? Find(string id)
    {
        DropExpired();
        if (!_held.TryGetValue(id, out var held) || !held.TryAcquire(time.GetUtcNow())) return null;
        held.ReleaseReader(time.GetUtcNow());
        return held;
    }

    /// <summary>
    /// The resource a request names, held for reading until the returned use is disposed: a drop
    /// or expiry meanwhile frees it only after that.
    /// </summary>
    public ResourceUse<T> Use(string name, string field)
    {
        DropExpired();
        if (string.IsNullOrEmpty(name)) throw new InvalidFieldException(field, $"required ({kind.NamePrefix}{{id}})");
        var id = name.StartsWith(kind.NamePrefix, StringComparison.Ordinal) ? name[kind.NamePrefix.Length..] : null;
        if (id is null) throw new InvalidFieldException(field, $"'{name}' is not a {kind.Noun} name ({kind.NamePrefix}{{id}})");
        if (_held.TryGetValue(id, out var resource) && resource.TryAcquire(time.GetUtcNow()))
            return new ResourceUse<T>(resource, time);
        throw new ResourceNotFoundException(kind.ResourceType, name, kind.NotFoundReason,
            $"{field}: no {kind.Noun} '{name}' (it may have been dropped, its lease may have expired, or the server restarted; register it again)");
    }

    /// <summary>Counts <paramref name="footprint"/> against the budget ahead of making the resource, or refuses it.</summary>
    public void Reserve(long footprint)
    {
        DropExpired();
        lock (_budget)
        {
            var bound = limit();
            if (_used + footprint > bound)
                throw new LimitExceededException(kind.BudgetReason, kind.BudgetSetting,
                    $"a {kind.Noun} of {kind.Amount(footprint)} exceeds the server's {kind.Noun} budget ({kind.Amount(bound - _used)} of {kind.Amount(bound)} left); drop a {kind.Noun} first");
            _used += footprint;
        }
    }

    /// <summary>Returns a reservation whose resource was never made.</summary>
    public void CancelReservation(long footprint)
    {
        lock (_budget) _used -= footprint;
    }

    /// <summary>Holds a resource made under a reservation; the reservation becomes its own footprint.</summary>
    public T Add(T resource, long reserved)
    {
        lock (_budget) _used += resource.Footprint - reserved;
        resource.Renew(time.GetUtcNow());
        _held[resource.Id] = resource;
        return resource;
    }

    /// <summary>Reserves a made resource's footprint and holds it, or releases it and refuses.</summary>
    public T Admit(T resource)
    {
        try
        {
            Reserve(resource.Footprint);
        }
        catch
        {
            resource.Release();
            throw;
        }
        return Add(resource, resource.Footprint);
    }

    /// <summary>Removes it now; calls reading it finish first, then its memory is freed.</summary>
    public void Drop(string name, string field)
    {
        using (var use = Use(name, field)) Remove(use.Resource);
    }

    private void Remove(T resource)
    {
        if (!_held.TryRemove(new KeyValuePair<string, T>(resource.Id, resource))) return;
        lock (_budget) _used -= resource.Footprint;
        resource.Release();
    }

    private void DropExpired()
    {
        var now = time.GetUtcNow();
        foreach (var resource in _held.Values)
            if (resource.IsExpired(now)) Remove(resource);
    }

    public void Dispose()
    {
        foreach (var resource in _held.Values) Remove(resource);
    }
}
