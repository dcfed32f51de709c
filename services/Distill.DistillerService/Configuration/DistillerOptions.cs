namespace Distill.DistillerService.Configuration;

/// <summary>The "Distiller" configuration section.</summary>
public sealed class DistillerOptions
{
    public const string Section = "Distiller";

    /// <summary>Where run state lives: distiller.db (SQLite) and runs/ID/ checkpoints and outputs.</summary>
    public string DataFolder { get; set; } = "distiller-data";

    /// <summary>
    /// Npgsql connection string (Host=...;Database=...;Username=...): runs and events go to
    /// PostgreSQL instead of distiller.db. Checkpoints and outputs stay under DataFolder.
    /// One distiller per database: each resumes every unfinished run it finds there.
    /// </summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>Datasets are named relative to this folder; kernel services must see the same tree under their own data root.</summary>
    public string? DataRoot { get; set; }

    /// <summary>
    /// Kernel service addresses (http://host:port); an entry dns:///name:port is resolved to
    /// all its addresses. Empty means one local service on the default port. (No default
    /// entries here: the configuration binder appends to an array rather than replacing it.)
    /// </summary>
    public string[] KernelServices { get; set; } = [];

    public const string DefaultKernelService = "http://127.0.0.1:5051";

    /// <summary>How often dns:/// entries are looked up again, to follow replicas as they come and go.</summary>
    public double ResolveIntervalSeconds { get; set; } = 10;

    /// <summary>Key the kernel services require, if any.</summary>
    public string? KernelServiceApiKey { get; set; }

    /// <summary>Runs that compute at once; further runs wait, QUEUED.</summary>
    public int MaxConcurrentRuns { get; set; } = 2;

    /// <summary>
    /// Loaded datasets kept when no run or evaluation uses them (one per folder, format and
    /// preprocessing); older idle ones are freed. Datasets in use always stay.
    /// </summary>
    public int MaxIdleDatasets { get; set; } = 2;

    /// <summary>Attempts per kernel call before its shard moves to another service.</summary>
    public int RetryAttempts { get; set; } = 3;

    /// <summary>Deadline of one kernel call.</summary>
    public double CallTimeoutSeconds { get; set; } = 300;

    /// <summary>Deadline of registering one shard of a feature pool: computing its target features can take many minutes on CPUs.</summary>
    public double FeaturePoolTimeoutSeconds { get; set; } = 3600;

    /// <summary>
    /// TorchSharp threads of the distiller itself. Its tensor work is small (Adam on the
    /// support set); more threads would only spin beside the kernel services on the same cores.
    /// </summary>
    public int Threads { get; set; } = 1;

    /// <summary>
    /// Where the distiller's own tensor work (Adam, label solves, the evaluation of runs
    /// without kernel services) computes: auto (CUDA when available), cpu, cuda or cuda:N.
    /// </summary>
    public string Device { get; set; } = Core.Runtime.ComputeDevice.Auto;

    /// <summary>How often a paused run probes for a kernel service to come back.</summary>
    public double ProbeIntervalSeconds { get; set; } = 1;

    /// <summary>Snapshots kept per run (the first and the latest always; the rest thinned evenly).</summary>
    public int SnapshotRetention { get; set; } = 100;

    /// <summary>
    /// Lease of the datasets this distiller registers on kernel services: they are dropped
    /// when no run needs them, and a service drops them itself after this long unused (a
    /// distiller that crashed leaks nothing).
    /// </summary>
    public double DatasetLeaseSeconds { get; set; } = 600;

    /// <summary>Deadline of the GetServerInfo call behind ListKernelServices.</summary>
    public double StatusTimeoutSeconds { get; set; } = 2;
}
