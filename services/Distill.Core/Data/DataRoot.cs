using Distill.Core.Errors;

namespace Distill.Core.Data;

/// <summary>Dataset paths that callers name relative to a server's data root, which they may not leave.</summary>
public static class DataRoot
{
    /// <summary>The full path of <paramref name="path"/> under <paramref name="root"/>; symbolic links are judged by where they lead.</summary>
    /// <exception cref="InvalidFieldException">the path is empty, holds a null character or leads outside the root.</exception>
    /// <exception cref="ResourceNotFoundException">there is no such folder.</exception>
    public static string Resolve(string root, string path)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new InvalidFieldException("path", "required");
        // Path.GetFullPath throws a plain ArgumentException on it: the client's error, not ours.
        if (path.Contains('\0'))
            throw new InvalidFieldException("path", "contains a null character");
        var rootFull = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var full = Path.GetFullPath(Path.Combine(rootFull, path));
        var target = Directory.Exists(full) ? new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full : full;
        foreach (var candidate in new[] { full, target })
            if (!candidate.StartsWith(rootFull + Path.DirectorySeparatorChar, StringComparison.Ordinal) && candidate != rootFull)
                throw new InvalidFieldException("path", $"'{path}' is outside the server's data root");
        if (!Directory.Exists(full))
            throw new ResourceNotFoundException("folder", path, ErrorReasons.PathNotFound, $"path: no folder '{path}' under the data root");
        return full;
    }
}
