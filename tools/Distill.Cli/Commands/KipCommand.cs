using System.ComponentModel;
using System.Globalization;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Runs;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Distill.Cli.Commands;

public sealed class KipSettings : DatasetSettings
{
    [CommandOption("--method <METHOD>"), Description("kip | ls"), DefaultValue("kip")]
    public string Method { get; init; } = "kip";

    [CommandOption("--ipc <N>"), Description("Support images per class."), DefaultValue(1)]
    public int SupportPerClass { get; init; } = 1;

    [CommandOption("--steps <N>"), DefaultValue(300)]
    public int Steps { get; init; } = 300;

    [CommandOption("--lr <X>"), Description("Adam learning rate."), DefaultValue(0.01)]
    public double LearningRate { get; init; } = 0.01;

    [CommandOption("--target-batch <N>"), Description("Class-balanced targets per step."), DefaultValue(5000)]
    public int TargetBatch { get; init; } = 5000;

    [CommandOption("--fixed-labels"), Description("Do not learn the support labels.")]
    public bool FixedLabels { get; init; }

    [CommandOption("--init <INIT>"), Description("real | noise"), DefaultValue("real")]
    public string Init { get; init; } = "real";

    [CommandOption("--seed <N>"), DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--eval-every <N>"), Description("Steps between test evaluations (0: only at the end)."), DefaultValue(100)]
    public int EvaluateEvery { get; init; } = 100;

    [CommandOption("--checkpoint-every <N>"), DefaultValue(50)]
    public int CheckpointEvery { get; init; } = 50;

    [CommandOption("--out <DIR>"), Description("Output folder (checkpoint, distilled set, grid, summary)."), DefaultValue("runs/latest")]
    public string Output { get; init; } = "runs/latest";

    [CommandOption("--resume"), Description("Continue from the checkpoint in --out if there is one.")]
    public bool Resume { get; init; }

    /// <summary>The run's options; a convolutional kernel reads <paramref name="data"/>'s image shape (see <see cref="DatasetSettings.KernelSpec"/>).</summary>
    public KipOptions ToOptions(PreparedDataset? data = null) => new()
    {
        Method = Method.ToLowerInvariant() switch
        {
            "kip" => DistillationMethod.Kip,
            "ls" => DistillationMethod.LabelSolve,
            _ => throw new ArgumentException($"--method: expected kip or ls, got '{Method}'"),
        },
        Kernel = KernelSpec(data),
        SupportPerClass = SupportPerClass,
        Steps = Steps,
        LearningRate = LearningRate,
        TargetBatch = TargetBatch,
        LearnLabels = !FixedLabels,
        Initialization = Init.ToLowerInvariant() switch
        {
            "real" => SupportInitialization.Real,
            "noise" => SupportInitialization.Noise,
            _ => throw new ArgumentException($"--init: expected real or noise, got '{Init}'"),
        },
        Regularization = Regularization,
        Seed = Seed,
        EvaluateEvery = EvaluateEvery,
        CheckpointEvery = CheckpointEvery,
        BlockRows = BlockRows,
    };

    public override ValidationResult Validate()
    {
        var baseResult = base.Validate();
        if (!baseResult.Successful) return baseResult;
        try { ToOptions().Validate(); }
        catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
        return ValidationResult.Success();
    }
}

public sealed class KipCommand : Command<KipSettings>
{
    public override int Execute(CommandContext context, KipSettings settings, CancellationToken cancellation)
    {
        using var data = DatasetLoading.Load(settings, settings.ToOptions().Method == DistillationMethod.Kip ? "KIP" : "Label Solve");
        var options = settings.ToOptions(data);
        using var interrupt = new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation, interrupt.Token);
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; interrupt.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            var summary = RunProgress.Run(options, (report, token) =>
                LocalRun.Execute(data, options, settings.Output, settings.Resume, report, token), linked.Token);
            PrintSummary(summary);
            return 0;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine($"[yellow]Interrupted.[/] Progress is saved; continue with [bold]--resume --out {Markup.Escape(settings.Output)}[/].");
            return 130;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static void PrintSummary(RunSummary summary)
    {
        var table = new Table().AddColumns("", "");
        table.HideHeaders();
        table.AddRow("test accuracy", $"{summary.TestAccuracy:P2}");
        table.AddRow("test MSE", summary.TestMse.ToString("G4", CultureInfo.InvariantCulture));
        table.AddRow("steps", $"{summary.Steps} ({summary.StepsPerSecond:F2} steps/s)");
        table.AddRow("peak memory", $"{summary.PeakRssMb:F0} MiB");
        foreach (var (name, path) in summary.Outputs) table.AddRow(name, Markup.Escape(path));
        AnsiConsole.Write(table);
        // One machine-readable line for scripts (bench/run.sh reads the last one).
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result dataset={summary.Dataset} method={summary.Method} support={summary.SupportSize} test_accuracy={summary.TestAccuracy:F4} steps={summary.Steps} seconds={summary.TrainingSeconds:F2} steps_per_second={summary.StepsPerSecond:F3} peak_rss_mb={summary.PeakRssMb:F0}"));
    }
}
