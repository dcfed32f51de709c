using Distill.Client;

namespace Distill.Dashboard.Services;

/// <summary>
/// Everything the dashboard's pages ask of the distiller. Components depend on this interface
/// only, so that they can be tested against a fake; the real one wraps <see cref="DistillerClient"/>.
/// Failed calls throw <see cref="DistillerException"/>.
/// </summary>
public interface IDashboardService
{
    Task<RunPage> ListRunsAsync(ListRunsQuery query, CancellationToken cancellationToken = default);
    Task<RunInfo> GetRunAsync(string id, CancellationToken cancellationToken = default);
    Task<RunInfo> StartRunAsync(RunSpecification spec, string requestId, CancellationToken cancellationToken = default);
    Task<RunInfo> CancelRunAsync(string id, CancellationToken cancellationToken = default);
    Task<RunInfo> ResumeRunAsync(string id, int? steps, CancellationToken cancellationToken = default);
    Task DeleteRunAsync(string id, CancellationToken cancellationToken = default);
    /// <summary>Every snapshot of the run without tensors, oldest first.</summary>
    Task<IReadOnlyList<SnapshotInfo>> ListSnapshotsAsync(string id, CancellationToken cancellationToken = default);
    /// <summary>One snapshot with its images and labels.</summary>
    Task<SnapshotInfo> GetSnapshotAsync(string id, long step, CancellationToken cancellationToken = default);
    Task<IReadOnlyList<KernelServiceInfo>> ListKernelServicesAsync(CancellationToken cancellationToken = default);
    Task<IReadOnlyList<DatasetFolderInfo>> ListDatasetsAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// The run's last <paramref name="count"/> training losses, oldest first, for a sparkline. Read from the
    /// run's event history without following it, incrementally and cached per run and step, so that
    /// asking again at the same step costs nothing.
    /// </summary>
    Task<IReadOnlyList<double>> RecentLossesAsync(string id, long step, int count, CancellationToken cancellationToken = default);

    /// <summary>KRR test accuracy and MSE of the run's support set at a step under another kernel.</summary>
    Task<EvaluationResult> EvaluateRunAsync(string id, KernelSpecification kernel, long? step, CancellationToken cancellationToken = default);

    /// <summary>Finite networks trained on the run's support set at a step and scored on the test split; takes minutes.</summary>
    Task<TransferEvaluation> TransferRunAsync(string id, TransferSpecification transfer, long? step, CancellationToken cancellationToken = default);

    /// <summary>
    /// Subscribes to a run's events: the handler first gets every event so far, then batches of
    /// new ones, at most a few times a second. Dispose the result to unsubscribe.
    /// </summary>
    IDisposable Watch(string id, Action<IReadOnlyList<RunEventRecord>> onEvents);
}
