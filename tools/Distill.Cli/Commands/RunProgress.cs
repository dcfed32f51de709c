using System.Globalization;
using Distill.Core.Distillation;
using Distill.Core.Runs;
using Spectre.Console;

namespace Distill.Cli.Commands;

/// <summary>
/// Shows a run's progress: a live bar (step, loss, steps/s, ETA) on a terminal, and
/// plain periodic lines when output goes to a file or a pipe.
/// </summary>
internal static class RunProgress
{
    public static RunSummary Run(KipOptions options, Func<Action<RunEvent>, CancellationToken, RunSummary> execute, CancellationToken cancellation)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
            return execute(PlainReporter(options), cancellation);

        RunSummary? summary = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("starting", maxValue: Math.Max(1, options.Steps));
                string accuracy = "";
                summary = execute(e =>
                {
                    switch (e)
                    {
                        case RunStarted s:
                            task.Value = s.FromStep;
                            if (s.Resumed) AnsiConsole.MarkupLine($"Resumed from step {s.FromStep}.");
                            break;
                        case StepCompleted s:
                            task.Value = s.Step;
                            task.Description = string.Create(CultureInfo.InvariantCulture, $"step {s.Step}/{s.TotalSteps}  loss {s.Loss:E3}  {s.StepsPerSecond:F1} steps/s{accuracy}");
                            break;
                        case PhaseProgress p:
                            task.Description = Describe(p);
                            break;
                        case EvaluationCompleted ev:
                            accuracy = $"  test acc {ev.Result.Accuracy:P2}";
                            AnsiConsole.MarkupLine($"step {ev.Step}: test accuracy [bold]{ev.Result.Accuracy:P2}[/], MSE {ev.Result.Mse:G4}");
                            break;
                    }
                }, cancellation);
                task.Value = task.MaxValue;
            });
        return summary!;
    }

    /// <summary>A phase's progress once it has run for a few seconds: most evaluations end sooner and need none.</summary>
    public static void PrintPhase(RunEvent e)
    {
        if (e is PhaseProgress p && p.Elapsed >= TimeSpan.FromSeconds(3)) Console.WriteLine(Describe(p));
    }

    private static string Describe(PhaseProgress p)
    {
        var (what, unit) = p.Phase switch
        {
            RunPhase.LabelSolve => ("label solve", "train images"),
            RunPhase.FeaturePoolSetup => ("feature pool set-up", "networks"),
            RunPhase.SupportGram => ("support Gram", "image pairs"),
            _ => ("evaluation", "test images"),
        };
        return string.Create(CultureInfo.InvariantCulture, $"{what}: {p.Done}/{p.Total} {unit} ({p.Elapsed.TotalSeconds:F0} s)");
    }

    private static Action<RunEvent> PlainReporter(KipOptions options)
    {
        long every = Math.Max(1, options.Steps / 20);
        return e =>
        {
            switch (e)
            {
                case RunStarted { Resumed: true } s:
                    Console.WriteLine($"resumed from step {s.FromStep}");
                    break;
                case StepCompleted s when s.Step % every == 0 || s.Step == s.TotalSteps:
                    var eta = s.StepsPerSecond > 0 ? TimeSpan.FromSeconds((s.TotalSteps - s.Step) / s.StepsPerSecond) : TimeSpan.Zero;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {s.Step}/{s.TotalSteps} loss {s.Loss:E4} {s.StepsPerSecond:F2} steps/s eta {eta:hh\\:mm\\:ss}"));
                    break;
                case EvaluationCompleted ev:
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {ev.Step} test_accuracy {ev.Result.Accuracy:F4} mse {ev.Result.Mse:G5}"));
                    break;
                case PhaseProgress p:
                    PrintPhase(p);
                    break;
                case CheckpointWritten c:
                    Console.WriteLine($"checkpoint step {c.Step} -> {c.Path}");
                    break;
            }
        };
    }
}
