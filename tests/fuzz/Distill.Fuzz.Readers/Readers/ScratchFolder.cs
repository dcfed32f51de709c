namespace Distill.Fuzz.Readers;

/// <summary>
/// The readers take paths, so each input is written out as files first: into one folder per
/// process, emptied before every input so that no file of an earlier input is read.
/// </summary>
public sealed class ScratchFolder : IDisposable
{
    public ScratchFolder() => Root = Directory.CreateTempSubdirectory("distill-fuzz-").FullName;

    public string Root { get; }

    /// <summary>Empties the folder.</summary>
    public void Clear()
    {
        foreach (var directory in Directory.EnumerateDirectories(Root)) Directory.Delete(directory, recursive: true);
        foreach (var file in Directory.EnumerateFiles(Root)) File.Delete(file);
    }

    /// <summary>Writes bytes at a path relative to the folder, creating folders; returns the full path.</summary>
    public string Write(string relativePath, byte[] bytes)
    {
        var path = Path.Combine(Root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is not worth failing a finished run for.
        }
    }
}
