namespace Distill.Core.Output;

/// <summary>
/// Writes a file so that readers see either the old or the new content, never a torn
/// one: write a sibling temporary file, flush it to disk, then rename over the target.
/// A failed write (a full disk) leaves the target as it was and removes the temporary file.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="path"/>; with <paramref name="keepPreviousAs"/>, the file it replaces
    /// is renamed to that path once the new content is safely on disk, so two generations stay.
    /// </summary>
    public static void Write(string path, Action<Stream> write, string? keepPreviousAs = null)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            if (keepPreviousAs is not null && File.Exists(path)) File.Move(path, keepPreviousAs, overwrite: true);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>Removes the temporary files of writes that a killed process left in a folder.</summary>
    public static void DeleteLeftovers(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var file in Directory.EnumerateFiles(directory, ".*.tmp")) File.Delete(file);
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy));
    }

    public static void WriteAllText(string path, string text) =>
        WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
}
