using Distill.Protos.Kernel.V1;
using Grpc.Net.Client;

namespace Distill.DistillerService.Kernels;

/// <summary>One kernel service: its channel, the compute slots this distiller may use there, and recent call times.</summary>
public sealed class KernelEndpoint(string address, GrpcChannel channel)
{
    private const int Window = 32;
    private static readonly TimeSpan RecentRuns = TimeSpan.FromMinutes(5);
    private readonly Lock _lock = new();
    private readonly Queue<(TimeSpan Compute, TimeSpan Wall)> _calls = new();
    private readonly Dictionary<string, DateTimeOffset> _runs = [];

    public string Address { get; } = address;
    public GrpcChannel Channel { get; } = channel;
    public KernelService.KernelServiceClient Client { get; } = new(channel);

    /// <summary>The service's max_concurrent_requests as this distiller learned it (0 until known).</summary>
    public int MaxConcurrent { get; internal set; }

    /// <summary>Calls this distiller has in flight there.</summary>
    public int CallsInFlight => Volatile.Read(ref _inFlight);

    private int _inFlight;

    internal void Enter() => Interlocked.Increment(ref _inFlight);

    internal void Exit() => Interlocked.Decrement(ref _inFlight);

    /// <summary>One KIP shard call: the server's compute time, the whole call's wall time, and the run it was for.</summary>
    public void Record(TimeSpan compute, TimeSpan wall, string? run, DateTimeOffset now)
    {
        lock (_lock)
        {
            _calls.Enqueue((compute, wall));
            while (_calls.Count > Window) _calls.Dequeue();
            if (run is not null) _runs[run] = now;
        }
    }

    /// <summary>Means over the recent calls (compute, transport = wall - compute) and the runs seen lately.</summary>
    public (TimeSpan Compute, TimeSpan Transport, IReadOnlyList<string> Runs) Recent(DateTimeOffset now)
    {
        lock (_lock)
        {
            foreach (var stale in _runs.Where(r => now - r.Value > RecentRuns).Select(r => r.Key).ToList()) _runs.Remove(stale);
            if (_calls.Count == 0) return (TimeSpan.Zero, TimeSpan.Zero, _runs.Keys.Order(StringComparer.Ordinal).ToList());
            var compute = TimeSpan.FromTicks((long)_calls.Average(c => c.Compute.Ticks));
            var transport = TimeSpan.FromTicks((long)_calls.Average(c => Math.Max(0, (c.Wall - c.Compute).Ticks)));
            return (compute, transport, _runs.Keys.Order(StringComparer.Ordinal).ToList());
        }
    }
}
