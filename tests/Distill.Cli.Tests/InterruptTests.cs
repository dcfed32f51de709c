using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Distill.DistillerService.Tests;

namespace Distill.Cli.Tests;

/// <summary>
/// <c>distill kip</c> stopped the way supervisors stop it (systemd, <c>podman stop</c>, Kubernetes):
/// SIGTERM saves the step it reached, and <c>--resume</c> continues from that step.
/// </summary>
public sealed partial class InterruptTests : IDisposable
{
    private const int Sigterm = 15;
    private readonly string _root = Directory.CreateTempSubdirectory("distill-cli-").FullName;

    [Fact]
    public async Task Kip_OnSigterm_SavesTheStepReachedAndResumesFromIt()
    {
        var data = TinyDataset.Write(_root);
        string[] kip = ["kip", "--data", data, "--ipc", "1", "--steps", "5000", "--target-batch", "100", "--eval-every", "0",
            "--checkpoint-every", "0", "--threads", "1", "--out", Path.Combine(_root, "run")];

        // No periodic checkpoints: only the signal's handling can write one before the last step.
        var stopped = await RunAsync(kip, terminateOn: line => ProgressLine().IsMatch(line));
        Assert.True(stopped.ExitCode == 130, $"exit code {stopped.ExitCode}:\n{stopped.Output}");
        Assert.Contains("Interrupted.", stopped.Output);
        var saved = Steps(CheckpointLine(), stopped.Output).Single();
        Assert.InRange(saved, 250, 4999);

        var resumed = await RunAsync([.. kip, "--resume"]);
        Assert.True(resumed.ExitCode == 0, $"exit code {resumed.ExitCode}:\n{resumed.Output}");
        Assert.Contains($"resumed from step {saved}", resumed.Output);
        var progress = Steps(ProgressLine(), resumed.Output);
        Assert.True(progress.Min() > saved, $"the resumed run printed step {progress.Min()}, at or before {saved}");
        Assert.Equal(5000, progress.Max());
    }

    private static long[] Steps(Regex line, string output) =>
        line.Matches(output).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToArray();

    [GeneratedRegex(@"^step (\d+)/5000 ", RegexOptions.Multiline)]
    private static partial Regex ProgressLine();

    [GeneratedRegex(@"^checkpoint step (\d+) -> ", RegexOptions.Multiline)]
    private static partial Regex CheckpointLine();

    /// <summary>Runs the built <c>distill</c>; sends SIGTERM once, on the first line <paramref name="terminateOn"/> accepts.</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(string[] arguments, Func<string, bool>? terminateOn = null)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(CliDll());
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = new Process { StartInfo = start };
        var lines = new ConcurrentQueue<string>();
        var signalled = 0;
        void OnLine(string? line)
        {
            if (line is null) return;
            lines.Enqueue(line);
            if (terminateOn?.Invoke(line) == true && Interlocked.Exchange(ref signalled, 1) == 0 && Kill(process.Id, Sigterm) != 0)
                lines.Enqueue($"kill({process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        }
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"distill still ran after 5 minutes:\n{string.Join("\n", lines)}");
        }
        process.WaitForExit();  // drains the redirected output
        return (process.ExitCode, string.Join("\n", lines));
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>The command line's build output beside this test's: same configuration.</summary>
    private static string CliDll()
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Distill.Grpc.sln")))
                return Path.Combine(dir.FullName, "tools", "Distill.Cli", "bin", configuration, "net10.0", "distill.dll");
        throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
