using System.Globalization;
using Distill.Core.Errors;

namespace Distill.DistillerService.Runs;

/// <summary>Resource names: runs/{run} and runs/{run}/snapshots/{step}.</summary>
public static class RunNames
{
    public const string Collection = "runs/";
    public const string RunType = "distill.distiller.v1.Run";
    public const string SnapshotType = "distill.distiller.v1.Snapshot";

    public static string NewId() => "run-" + Guid.NewGuid().ToString("N")[..12];

    public static string Name(string id) => Collection + id;

    public static string SnapshotName(string id, long step) => $"{Collection}{id}/snapshots/{step.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The run id of a full name runs/{run}; anything else is an invalid field.</summary>
    public static string Id(string name, string field = "name")
    {
        if (string.IsNullOrEmpty(name)) throw new InvalidFieldException(field, "required, as runs/{run}");
        var id = name.StartsWith(Collection, StringComparison.Ordinal) ? name[Collection.Length..] : "";
        if (id.Length == 0 || id.Length > 64 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            throw new InvalidFieldException(field, $"'{name}' is not a run name, runs/{{run}}");
        return id;
    }

    /// <summary>The run id and step of runs/{run}/snapshots/{step}.</summary>
    public static (string RunId, long Step) Snapshot(string name, string field = "name")
    {
        var parts = (name ?? "").Split('/');
        if (parts.Length != 4 || parts[2] != "snapshots"
            || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var step))
            throw new InvalidFieldException(field, $"'{name}' is not a snapshot name, runs/{{run}}/snapshots/{{step}}");
        return (Id($"{parts[0]}/{parts[1]}", field), step);
    }

    public static ResourceNotFoundException RunNotFound(string id) =>
        new(RunType, Name(id), ErrorReasons.RunNotFound, $"name: no run '{Name(id)}'");

    public static ResourceNotFoundException SnapshotNotFound(string id, long step) =>
        new(SnapshotType, SnapshotName(id, step), ErrorReasons.SnapshotNotFound,
            $"no snapshot '{SnapshotName(id, step)}' (snapshots are taken at checkpoints and thinned as a run grows)");
}
