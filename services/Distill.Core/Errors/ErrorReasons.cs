namespace Distill.Core.Errors;

/// <summary>The stable reasons that errors carry (ErrorInfo.reason); the .proto files list them for clients.</summary>
public static class ErrorReasons
{
    public const string Domain = "distill";
    public const string InvalidField = "INVALID_FIELD";
    public const string DatasetNotFound = "DATASET_NOT_FOUND";
    public const string PathNotFound = "PATH_NOT_FOUND";
    public const string RunNotFound = "RUN_NOT_FOUND";
    public const string SnapshotNotFound = "SNAPSHOT_NOT_FOUND";
    public const string ServerBusy = "SERVER_BUSY";
    public const string RequestTooLarge = "REQUEST_TOO_LARGE";
    public const string DatasetBudgetExceeded = "DATASET_BUDGET_EXCEEDED";
    public const string FeaturePoolNotFound = "FEATURE_POOL_NOT_FOUND";
    public const string FeaturePoolBudgetExceeded = "FEATURE_POOL_BUDGET_EXCEEDED";
    public const string DatasetUnreadable = "DATASET_UNREADABLE";
    public const string DataRootNotConfigured = "DATA_ROOT_NOT_CONFIGURED";
    public const string RunStateConflict = "RUN_STATE_CONFLICT";
    public const string RequestIdReused = "REQUEST_ID_REUSED";
    public const string NoCheckpointYet = "NO_CHECKPOINT_YET";
    public const string Unauthenticated = "UNAUTHENTICATED";
    public const string Internal = "INTERNAL";
}
