using System.Diagnostics;

namespace Distill.DistillerService.Tests.Faults;

/// <summary>
/// A tmpfs of a few megabytes mounted by the test (needs root, or CAP_SYS_ADMIN), which the
/// test fills to the last byte with one filler file and empties again.
/// </summary>
public sealed class SmallFilesystem : IDisposable
{
    private SmallFilesystem(string mountPoint) => MountPoint = mountPoint;

    public string MountPoint { get; }
    private string Filler => Path.Combine(MountPoint, "filler");

    /// <summary>Mounts at <paramref name="mountPoint"/>; skips the test, saying why, where mounting is not permitted.</summary>
    public static SmallFilesystem Mount(string mountPoint, int megabytes)
    {
        Directory.CreateDirectory(mountPoint);
        var (code, output) = Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m", "distill-test", mountPoint);
        Skip.If(code != 0, $"cannot mount a small tmpfs for the disk-full test (needs root or CAP_SYS_ADMIN): {output.Trim()}");
        return new SmallFilesystem(mountPoint);
    }

    /// <summary>Writes the filler until the filesystem has no byte left.</summary>
    public void Fill()
    {
        var block = new byte[64 * 1024];
        using var filler = new FileStream(Filler, FileMode.Append, FileAccess.Write, FileShare.None, 1);
        try
        {
            while (true) filler.Write(block);
        }
        catch (IOException)
        {
        }
        // Then the last bytes, one at a time.
        try
        {
            while (true) filler.WriteByte(0);
        }
        catch (IOException)
        {
        }
    }

    public void Free() => File.Delete(Filler);

    private static (int Code, string Output) Run(string command, params string[] arguments)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }

    public void Dispose() => Run("umount", "--lazy", MountPoint);
}
