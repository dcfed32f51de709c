namespace Distill.Client;

/// <summary>
/// Run ids and resource names: callers may pass either "run-abc" or "runs/run-abc"; the
/// wire always carries the resource name.
/// </summary>
public static class RunNames
{
    private const string Prefix = "runs/";

    /// <summary>"runs/{id}" for a bare id or a resource name.</summary>
    public static string ToName(string idOrName) => Prefix + ToId(idOrName);

    /// <summary>The bare id for a bare id or a resource name.</summary>
    public static string ToId(string idOrName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(idOrName);
        var id = idOrName.StartsWith(Prefix, StringComparison.Ordinal) ? idOrName[Prefix.Length..] : idOrName;
        // Anything else with a slash is another resource (a snapshot, a dataset): refuse it
        // here rather than send a name the server would report as not found.
        if (id.Length == 0 || id.Contains('/'))
            throw new ArgumentException($"'{idOrName}' is neither a run id nor a run name (runs/{{id}})", nameof(idOrName));
        return id;
    }

    /// <summary>"runs/{id}/snapshots/{step}".</summary>
    public static string SnapshotName(string idOrName, long step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        return $"{ToName(idOrName)}/snapshots/{step}";
    }
}
