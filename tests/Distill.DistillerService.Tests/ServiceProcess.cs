using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Grpc.Health.V1;
using Grpc.Net.Client;

namespace Distill.DistillerService.Tests;

/// <summary>A service as its own operating-system process (`dotnet X.dll`), for crash and restart tests.</summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private static readonly Lock LogLock = new();
    private readonly Process _process;

    private ServiceProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }
    public string Address => $"http://127.0.0.1:{Port}";

    public static async Task<ServiceProcess> StartAsync(string project, int port, params string[] arguments)
    {
        // The host says when it listens (Microsoft.Hosting.Lifetime); the process ending first is a failure.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = Create(project, port, arguments, line =>
        {
            if (line.Contains("Application started", StringComparison.Ordinal)) started.TrySetResult();
        });
        process.Exited += (_, _) => started.TrySetException(new InvalidOperationException($"service process exited with code {process.ExitCode}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var service = new ServiceProcess(process, port);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(90));
        await service.WaitUntilServingAsync();
        return service;
    }

    /// <summary>
    /// Starts a service that is expected to refuse to start: its exit code and everything it
    /// printed, or a <see cref="TimeoutException"/> when it is still running after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunToExitAsync(string project, TimeSpan timeout, params string[] arguments)
    {
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var process = Create(project, FreePort(), arguments, output.Enqueue);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{project} still ran after {timeout}: {string.Join("\n", output)}");
        }
        process.WaitForExit();  // drains the redirected output
        return (process.ExitCode, string.Join("\n", output));
    }

    private static Process Create(string project, int port, string[] arguments, Action<string> onLine)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Dll(project));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        // DISTILL_TEST_SERVICE_LOG=FILE keeps what the services print, to see why a process test failed.
        var log = Environment.GetEnvironmentVariable("DISTILL_TEST_SERVICE_LOG");
        void Line(string? text)
        {
            if (text is null) return;
            if (!string.IsNullOrEmpty(log)) lock (LogLock) File.AppendAllText(log, $"{project}:{port}: {text}\n");
            onLine(text);
        }
        process.OutputDataReceived += (_, line) => Line(line.Data);
        process.ErrorDataReceived += (_, line) => Line(line.Data);
        return process;
    }

    /// <summary>SIGKILL: no shutdown code runs, as in a crash or an OOM kill.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The health check answers SERVING once the host has started.</summary>
    private async Task WaitUntilServingAsync()
    {
        using var channel = GrpcChannel.ForAddress(Address);
        var health = new Health.HealthClient(channel);
        var response = await health.CheckAsync(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
        if (response.Status != HealthCheckResponse.Types.ServingStatus.Serving)
            throw new InvalidOperationException($"service at {Address} is {response.Status}");
    }

    /// <summary>The service's build output beside this test's: same configuration.</summary>
    private static string Dll(string project)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Distill.Grpc.sln")))
                return Path.Combine(dir.FullName, "services", project, "bin", configuration, "net10.0", project + ".dll");
        throw new InvalidOperationException("repository root not found above " + AppContext.BaseDirectory);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) Kill();
        _process.Dispose();
        await Task.CompletedTask;
    }
}
