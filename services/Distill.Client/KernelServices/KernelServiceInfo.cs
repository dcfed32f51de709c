namespace Distill.Client;

/// <summary>A kernel service the distiller uses, with its health and load as last checked.</summary>
/// <param name="Error">Why it is not reachable; null when it is.</param>
/// <param name="CallsInFlight">Calls this distiller has in flight there now.</param>
/// <param name="RecentComputeTime">Mean server compute time of recent KIP shard calls; null before any.</param>
/// <param name="RecentTransportTime">Mean rest of those calls (network, serialisation).</param>
/// <param name="Runs">Runs whose steps it computed recently, runs/{run}.</param>
public sealed record KernelServiceInfo(
    string Address,
    bool Reachable,
    string? Error,
    string Version,
    string Device,
    int Threads,
    int CallsInFlight,
    int MaxConcurrentRequests,
    TimeSpan? RecentComputeTime,
    TimeSpan? RecentTransportTime,
    IReadOnlyList<string> Runs,
    DateTimeOffset? CheckTime);
