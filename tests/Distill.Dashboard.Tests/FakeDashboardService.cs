using Distill.Client;
using Distill.Dashboard.Services;
using Grpc.Core;

namespace Distill.Dashboard.Tests;

/// <summary>A test double of the dashboard's service: canned runs, an optional failure, and events pushed by hand.</summary>
public sealed class FakeDashboardService : IDashboardService
{
    public List<RunInfo> Runs { get; } = [];
    public List<SnapshotInfo> Snapshots { get; } = [];
    public List<KernelServiceInfo> KernelServices { get; } = [];
    public List<DatasetFolderInfo> Datasets { get; } = [new("mnist", DatasetFormat.Idx)];
    /// <summary>When set, every call throws it.</summary>
    public DistillerException? Failure { get; set; }
    /// <summary>When set, StartRun throws it.</summary>
    public DistillerException? StartFailure { get; set; }
    public List<RunSpecification> Started { get; } = [];
    public List<string> Cancelled { get; } = [];
    public List<ListRunsQuery> Queries { get; } = [];
    private readonly List<Action<IReadOnlyList<RunEventRecord>>> watchers = [];

    public static DistillerException Unavailable() => new(StatusCode.Unavailable, "connection refused");

    public static RunInfo Run(string id, RunStatus state = RunStatus.Running, long step = 40, long total = 100) => new(
        id, $"runs/{id}", state, "", new RunSpecification { Dataset = "mnist", Steps = (int)total, Kernel = new KernelSpecification(Depth: 1) },
        step, total, 0.05, 0.8, 0.85, 0, 12.5, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, null);

    public static SnapshotInfo Snapshot(long step, int classes = 3)
    {
        var images = new TensorData(Enumerable.Range(0, classes * 4 * 4).Select(i => (i % 7) / 7f).ToArray(), [classes, 1, 4, 4]);
        var labels = new float[classes * classes];
        for (int i = 0; i < classes; i++) labels[i * classes + i] = 1;
        labels[classes - 1] = 2;  // image 0's largest entry is the last class: flagged
        return new SnapshotInfo($"runs/r/snapshots/{step}", step, DateTimeOffset.UnixEpoch, images, null, new TensorData(labels, [classes, classes]),
            Enumerable.Range(0, classes).ToArray(), Enumerable.Range(0, classes).Select(c => $"c{c}").ToArray());
    }

    private T Check<T>(T value) => Failure is null ? value : throw Failure;

    public async Task<RunPage> ListRunsAsync(ListRunsQuery query, CancellationToken cancellationToken = default)
    {
        if (Hold is not null) await Hold.Task;
        Queries.Add(query);
        var size = query.PageSize ?? 50;
        var skip = query.PageToken is null ? 0 : int.Parse(query.PageToken);
        var page = Runs.Skip(skip).Take(size).ToArray();
        var next = skip + size < Runs.Count ? (skip + size).ToString() : null;
        return Check(new RunPage(page, next, Runs.Count));
    }

    /// <summary>When set, GetRun and ListKernelServices wait for it: the pages' loading state.</summary>
    public TaskCompletionSource? Hold { get; set; }

    public async Task<RunInfo> GetRunAsync(string id, CancellationToken cancellationToken = default)
    {
        if (Hold is not null) await Hold.Task;
        if (Failure is not null) throw Failure;
        return Runs.FirstOrDefault(r => r.Id == id) ?? throw new DistillerException(StatusCode.NotFound, "no such run");
    }

    public Task<RunInfo> StartRunAsync(RunSpecification spec, string requestId, CancellationToken cancellationToken = default)
    {
        if (StartFailure is not null) throw StartFailure;
        Started.Add(spec);
        var run = Run("run-new", RunStatus.Queued, 0, spec.Steps);
        Runs.Add(run);
        return Task.FromResult(run);
    }

    public Task<RunInfo> CancelRunAsync(string id, CancellationToken cancellationToken = default)
    {
        Cancelled.Add(id);
        return Task.FromResult(Check(Run(id, RunStatus.Cancelled)));
    }

    public Task<RunInfo> ResumeRunAsync(string id, int? steps, CancellationToken cancellationToken = default) =>
        Task.FromResult(Check(Run(id, RunStatus.Queued, 40, steps ?? 100)));

    public Task DeleteRunAsync(string id, CancellationToken cancellationToken = default)
    {
        Check(0);
        Runs.RemoveAll(r => r.Id == id);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<SnapshotInfo>> ListSnapshotsAsync(string id, CancellationToken cancellationToken = default) =>
        Task.FromResult(Check<IReadOnlyList<SnapshotInfo>>(Snapshots.ToArray()));

    public Task<SnapshotInfo> GetSnapshotAsync(string id, long step, CancellationToken cancellationToken = default) =>
        Task.FromResult(Check(Snapshots.FirstOrDefault(s => s.Step == step) ?? Snapshot(step)));

    public async Task<IReadOnlyList<KernelServiceInfo>> ListKernelServicesAsync(CancellationToken cancellationToken = default)
    {
        if (Hold is not null) await Hold.Task;
        return Check<IReadOnlyList<KernelServiceInfo>>(KernelServices.ToArray());
    }

    public Task<IReadOnlyList<DatasetFolderInfo>> ListDatasetsAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(Check<IReadOnlyList<DatasetFolderInfo>>(Datasets.ToArray()));

    /// <summary>Losses by run for RecentLosses; the calls made, as (run, step).</summary>
    public Dictionary<string, double[]> Losses { get; } = [];
    public List<(string Run, long Step)> LossCalls { get; } = [];

    public Task<IReadOnlyList<double>> RecentLossesAsync(string id, long step, int count, CancellationToken cancellationToken = default)
    {
        lock (LossCalls) LossCalls.Add((id, step));
        return Task.FromResult(Check<IReadOnlyList<double>>(Losses.TryGetValue(id, out var l) ? l.TakeLast(count).ToArray() : []));
    }

    /// <summary>Evaluate answers: the result for the kernel, or EvaluateFailure thrown.</summary>
    public DistillerException? EvaluateFailure { get; set; }
    public List<(string Run, KernelSpecification Kernel, long? Step)> Evaluations { get; } = [];

    public Task<EvaluationResult> EvaluateRunAsync(string id, KernelSpecification kernel, long? step, CancellationToken cancellationToken = default)
    {
        if (EvaluateFailure is not null) throw EvaluateFailure;
        Evaluations.Add((id, kernel, step));
        return Task.FromResult(new EvaluationResult(kernel.Kind == KernelKind.Nngp ? 0.75 : 0.5, 0.125, step ?? 0, kernel with { Depth = kernel.Depth ?? 1 }));
    }

    /// <summary>Transfer answers: TransferAnswer's result, or TransferFailure thrown; the calls made.</summary>
    public DistillerException? TransferFailure { get; set; }
    public TaskCompletionSource<TransferEvaluation>? TransferAnswer { get; set; }
    public List<(string Run, TransferSpecification Spec, long? Step)> Transfers { get; } = [];

    public Task<TransferEvaluation> TransferRunAsync(string id, TransferSpecification transfer, long? step, CancellationToken cancellationToken = default)
    {
        if (TransferFailure is not null) throw TransferFailure;
        Transfers.Add((id, transfer, step));
        return (TransferAnswer ??= new()).Task.WaitAsync(cancellationToken);
    }

    public IDisposable Watch(string id, Action<IReadOnlyList<RunEventRecord>> onEvents)
    {
        watchers.Add(onEvents);
        return new Unsubscribe(() => watchers.Remove(onEvents));
    }

    public int WatcherCount => watchers.Count;

    /// <summary>Delivers events to every subscribed page, as the watcher's flush does.</summary>
    public void Push(params RunEventRecord[] events)
    {
        foreach (var w in watchers.ToArray()) w(events);
    }

    private sealed class Unsubscribe(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
