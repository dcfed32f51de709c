using System.IO.Enumeration;
using Distill.Core.Errors;

namespace Distill.Core.Data;

/// <summary>Dataset paths that callers name relative to a server's data root, which they may not leave.</summary>
public static class DataRoot
{
    // Longer chains of links than this are refused rather than followed (as the kernel's ELOOP).
    private const int MaxLinkDepth = 40;

    /// <summary>
    /// The full path of <paramref name="path"/> under <paramref name="root"/>. Symbolic links are
    /// judged by where they lead: a link anywhere on the path, or anywhere inside the folder
    /// (a file of the dataset, a class folder), must lead to a place inside the root.
    /// </summary>
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
        var outside = new InvalidFieldException("path", $"'{path}' is outside the server's data root");
        if (!IsInside(rootFull, full))
            throw outside;
        var rootReal = RealPath(rootFull);
        if (!IsInside(rootReal, RealPath(full)))
            throw outside;
        if (!Directory.Exists(full))
            throw new ResourceNotFoundException("folder", path, ErrorReasons.PathNotFound, $"path: no folder '{path}' under the data root");
        foreach (var link in LinksUnder(full))
            if (!IsInside(rootReal, RealPath(link)))
                throw new InvalidFieldException("path", $"'{path}' holds a link that leads outside the server's data root");
        return full;
    }

    private static bool IsInside(string root, string candidate) =>
        candidate == root || candidate.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The path with every symbolic link on it followed (realpath), whether or not its end exists.</summary>
    private static string RealPath(string path, int depth = 0)
    {
        if (depth > MaxLinkDepth) throw new InvalidFieldException("path", "too many levels of symbolic links");
        var full = Path.GetFullPath(path);
        var current = Path.GetPathRoot(full)!;
        foreach (var part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            var target = new FileInfo(next).LinkTarget;
            // A relative target is relative to the link's folder, which is already real here.
            current = target is null ? next : RealPath(Path.Combine(current, target), depth + 1);
        }
        return current;
    }

    /// <summary>Every symbolic link inside a folder, at any depth; other entries cost no extra system call.</summary>
    private static IEnumerable<string> LinksUnder(string folder) =>
        new FileSystemEnumerable<string>(folder, (ref FileSystemEntry entry) => entry.ToFullPath(),
            new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true })
        {
            ShouldIncludePredicate = (ref FileSystemEntry entry) => (entry.Attributes & FileAttributes.ReparsePoint) != 0,
        };
}
