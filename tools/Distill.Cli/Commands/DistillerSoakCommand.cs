using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Distill.Client;
using Grpc.Net.Client;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Distill.Cli.Commands;

public sealed class DistillerSoakSettings : CommandSettings
{
    [CommandOption("--distiller <URL>"), Description("Distiller service, e.g. http://127.0.0.1:5052")]
    public string Distiller { get; init; } = "http://127.0.0.1:5052";

    [CommandOption("--dataset <NAME>"), DefaultValue("mnist")]
    public string Dataset { get; init; } = "mnist";

    [CommandOption("--minutes <M>"), DefaultValue(20.0)]
    public double Minutes { get; init; } = 20;

    [CommandOption("--concurrent <N>"), Description("Runs kept going at once."), DefaultValue(3)]
    public int Concurrent { get; init; } = 3;

    [CommandOption("--steps <N>"), DefaultValue(20)]
    public int Steps { get; init; } = 20;

    [CommandOption("--target-batch <N>"), DefaultValue(500)]
    public int TargetBatch { get; init; } = 500;

    public override ValidationResult Validate() =>
        Minutes <= 0 || Concurrent < 1 || Steps < 1 || TargetBatch < 1
            ? ValidationResult.Error("--minutes, --concurrent, --steps and --target-batch must be positive")
            : ValidationResult.Success();
}

/// <summary>
/// Many short runs, several at once, for a fixed time: each is started, watched to its end,
/// checked and deleted, so that whatever a run leaves behind in the distiller (memory,
/// handles, database rows, files) shows up as growth over hundreds of runs.
/// </summary>
public sealed class DistillerSoakCommand : Command<DistillerSoakSettings>
{
    public override int Execute(CommandContext context, DistillerSoakSettings settings, CancellationToken cancellation) =>
        RunAsync(settings, cancellation).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(DistillerSoakSettings settings, CancellationToken cancellation)
    {
        using var channel = GrpcChannel.ForAddress(settings.Distiller);
        var client = new DistillerClient(channel);
        var stop = DateTime.UtcNow.AddMinutes(settings.Minutes);
        var wall = Stopwatch.StartNew();
        int completed = 0, failed = 0;
        var failures = new List<string>();

        async Task Worker(int worker)
        {
            for (var i = 0; DateTime.UtcNow < stop && !cancellation.IsCancellationRequested; i++)
            {
                var run = await client.StartRunAsync(new RunSpecification
                {
                    Dataset = settings.Dataset,
                    SupportPerClass = 1,
                    Steps = settings.Steps,
                    TargetBatch = settings.TargetBatch,
                    Seed = worker * 1_000_000 + i,
                }, cancellationToken: cancellation);
                // Without follow, the stream ends with the event that ends the run.
                await foreach (var _ in client.WatchRunAsync(run.Id, cancellationToken: cancellation)) { }
                var ended = await client.GetRunAsync(run.Id, cancellation);
                if (ended.State == RunStatus.Succeeded && ended.Step == settings.Steps)
                {
                    var done = Interlocked.Increment(ref completed);
                    if (done % 25 == 0) AnsiConsole.MarkupLine($"{done} runs completed, {wall.Elapsed.TotalMinutes:F1} min");
                }
                else
                {
                    Interlocked.Increment(ref failed);
                    lock (failures) failures.Add($"{run.Id}: {ended.State} at step {ended.Step}: {ended.StateMessage}");
                }
                await client.DeleteRunAsync(run.Id, cancellation);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, settings.Concurrent).Select(w => Task.Run(() => Worker(w))));
        foreach (var failure in failures.Take(20)) AnsiConsole.MarkupLineInterpolated($"[red]{failure}[/]");
        var left = await client.ListRunsAsync(cancellationToken: cancellation);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result runs_completed={completed} runs_failed={failed} minutes={wall.Elapsed.TotalMinutes:F1} concurrent={settings.Concurrent} runs_per_minute={completed / wall.Elapsed.TotalMinutes:F1} runs_left={left.TotalSize}"));
        return 0;
    }
}
