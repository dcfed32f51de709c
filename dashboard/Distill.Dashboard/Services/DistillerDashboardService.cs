using System.Collections.Concurrent;
using Distill.Client;
using Microsoft.Extensions.Caching.Memory;

namespace Distill.Dashboard.Services;

/// <summary>The dashboard's service over the typed client; watching goes through the process-wide <see cref="RunWatcher"/>.</summary>
public sealed class DistillerDashboardService(DistillerClient client, RunWatcher watcher, IMemoryCache cache) : IDashboardService
{
    // Every page watching a run asks for each new snapshot at the same moment: one call serves them all.
    private readonly ConcurrentDictionary<(string Id, long Step), Lazy<Task<SnapshotInfo>>> snapshotsInFlight = new();

    public Task<RunPage> ListRunsAsync(ListRunsQuery query, CancellationToken cancellationToken = default) =>
        client.ListRunsAsync(query, cancellationToken);

    public Task<RunInfo> GetRunAsync(string id, CancellationToken cancellationToken = default) =>
        client.GetRunAsync(id, cancellationToken);

    public Task<RunInfo> StartRunAsync(RunSpecification spec, string requestId, CancellationToken cancellationToken = default) =>
        client.StartRunAsync(spec, requestId, cancellationToken);

    public Task<RunInfo> CancelRunAsync(string id, CancellationToken cancellationToken = default) =>
        client.CancelRunAsync(id, cancellationToken);

    public Task<RunInfo> ResumeRunAsync(string id, int? steps, CancellationToken cancellationToken = default) =>
        client.ResumeRunAsync(id, steps, cancellationToken);

    public Task DeleteRunAsync(string id, CancellationToken cancellationToken = default) =>
        client.DeleteRunAsync(id, cancellationToken);

    public async Task<IReadOnlyList<SnapshotInfo>> ListSnapshotsAsync(string id, CancellationToken cancellationToken = default)
    {
        var all = new List<SnapshotInfo>();
        string? token = null;
        do
        {
            var page = await client.ListSnapshotsAsync(id, full: false, pageSize: 1000, pageToken: token, cancellationToken: cancellationToken);
            all.AddRange(page.Snapshots);
            token = page.NextPageToken;
        } while (token is not null);
        return all;
    }

    /// <summary>A snapshot never changes, so it is fetched once and kept in the process's cache.</summary>
    public Task<SnapshotInfo> GetSnapshotAsync(string id, long step, CancellationToken cancellationToken = default)
    {
        var key = (id, step);
        if (cache.TryGetValue(key, out SnapshotInfo? cached) && cached is not null) return Task.FromResult(cached);
        return snapshotsInFlight.GetOrAdd(key, k => new Lazy<Task<SnapshotInfo>>(() => FetchSnapshotAsync(k))).Value.WaitAsync(cancellationToken);
    }

    private async Task<SnapshotInfo> FetchSnapshotAsync((string Id, long Step) key)
    {
        try
        {
            // Not the caller's token: other pages may be waiting for the same fetch.
            var snapshot = await client.GetSnapshotAsync(key.Id, key.Step, full: true, CancellationToken.None);
            long bytes = 4L * ((snapshot.Images?.Data.Length ?? 0) + (snapshot.PreprocessedImages?.Data.Length ?? 0) + (snapshot.Labels?.Data.Length ?? 0)) + 1024;
            cache.Set(key, snapshot, new MemoryCacheEntryOptions { Size = bytes, SlidingExpiration = TimeSpan.FromMinutes(10) });
            return snapshot;
        }
        finally
        {
            snapshotsInFlight.TryRemove(key, out _);
        }
    }

    public Task<IReadOnlyList<KernelServiceInfo>> ListKernelServicesAsync(CancellationToken cancellationToken = default) =>
        client.ListKernelServicesAsync(cancellationToken);

    public Task<IReadOnlyList<DatasetFolderInfo>> ListDatasetsAsync(CancellationToken cancellationToken = default) =>
        client.ListDatasetsAsync(cancellationToken);

    public Task<EvaluationResult> EvaluateRunAsync(string id, KernelSpecification kernel, long? step, CancellationToken cancellationToken = default) =>
        client.EvaluateRunAsync(id, kernel, step, cancellationToken);

    public Task<TransferEvaluation> TransferRunAsync(string id, TransferSpecification transfer, long? step, CancellationToken cancellationToken = default) =>
        client.TransferRunAsync(id, transfer, step, cancellationToken);

    private readonly Dictionary<string, LossHistory> losses = new(StringComparer.Ordinal);

    public async Task<IReadOnlyList<double>> RecentLossesAsync(string id, long step, int count, CancellationToken cancellationToken = default)
    {
        LossHistory history;
        lock (losses)
        {
            if (!losses.TryGetValue(id, out history!)) losses[id] = history = new LossHistory();
        }
        await history.Gate.WaitAsync(cancellationToken);
        try
        {
            if (history.Step < step)
            {
                // Only the events after the last one read: the history is fetched once, then extended.
                await foreach (var e in client.WatchRunAsync(id, history.Sequence, follow: false, cancellationToken))
                {
                    history.Sequence = e.Sequence;
                    if (e is not StepEvent s) continue;
                    history.Losses.Add(s.Loss);
                    history.Step = s.Step;
                    if (history.Losses.Count > LossHistory.Keep) history.Losses.RemoveRange(0, history.Losses.Count - LossHistory.Keep);
                }
                history.Step = Math.Max(history.Step, step);
            }
            return history.Losses.TakeLast(count).ToArray();
        }
        finally
        {
            history.Gate.Release();
        }
    }

    private sealed class LossHistory
    {
        public const int Keep = 200;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public List<double> Losses { get; } = [];
        public long Sequence { get; set; }
        public long Step { get; set; } = -1;
    }

    public IDisposable Watch(string id, Action<IReadOnlyList<RunEventRecord>> onEvents) => watcher.Subscribe(id, onEvents);
}
