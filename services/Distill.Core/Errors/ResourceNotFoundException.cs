namespace Distill.Core.Errors;

/// <summary>A named resource (a run, a dataset, a snapshot) that does not exist: NOT_FOUND.</summary>
public sealed class ResourceNotFoundException(string resourceType, string resourceName, string reason, string message)
    : Exception(message)
{
    /// <summary>e.g. "distill.distiller.v1.Run".</summary>
    public string ResourceType { get; } = resourceType;

    public string ResourceName { get; } = resourceName;

    /// <summary>A stable reason for clients, e.g. DATASET_NOT_FOUND.</summary>
    public string Reason { get; } = reason;
}
