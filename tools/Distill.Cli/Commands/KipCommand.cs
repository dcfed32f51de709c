using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.FeaturePool;
using Distill.Core.Kernels;
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

    [CommandOption("--feature-pool <P>"), Description("KIP on random ConvNet features: a fixed pool of P random networks whose target features are computed once (docs/architecture.md).")]
    public int? FeaturePool { get; init; }

    [CommandOption("--pool-sample <K>"), Description("Feature pool: networks sampled per step (with --fresh-networks: fresh networks per step)."), DefaultValue(8)]
    public int PoolSample { get; init; } = 8;

    [CommandOption("--fresh-networks"), Description("RFAD's own mode: --pool-sample new random networks every step, targets recomputed (no pool).")]
    public bool FreshNetworks { get; init; }

    [CommandOption("--pool-targets <N>"), Description("Feature pool: class-balanced training images whose features are stored."), DefaultValue(10000)]
    public int PoolTargets { get; init; } = 10000;

    [CommandOption("--held-out-networks <N>"), Description("Feature pool: random networks never sampled by a step, which choose the step kept and score the result."), DefaultValue(8)]
    public int HeldOutNetworks { get; init; } = 8;

    [CommandOption("--validation-per-class <N>"), Description("Feature pool: held-out training images per class (not targets) scored to choose the step kept."), DefaultValue(100)]
    public int ValidationPerClass { get; init; } = 100;

    [CommandOption("--validate-every <N>"), Description("Feature pool: steps between held-out validations (0: keep the last step)."), DefaultValue(100)]
    public int ValidateEvery { get; init; } = 100;

    [CommandOption("--mirror"), Description("Feature pool: the kernel sees each support image and its horizontal mirror image (2n images, labels shared) in steps, evaluations and outputs.")]
    public bool Mirror { get; init; }

    [CommandOption("--loss <LOSS>"), Description("Feature pool: mse | platt (cross-entropy with a learned scale)."), DefaultValue("mse")]
    public string Loss { get; init; } = "mse";

    [CommandOption("--test-subset <N>"), Description("Feature pool: evaluate on a fixed class-balanced subset of N test images (0: all)."), DefaultValue(0)]
    public int TestSubset { get; init; }

    [CommandOption("--no-exact-baseline"), Description("Feature pool: score the initial random real support under the held-out networks only (baseline=NaN): at 500 images and 1000 test images the exact evaluation is 625,250 image pairs, 25 to 80 minutes on two cores.")]
    public bool NoExactBaseline { get; init; }

    [CommandOption("--feature-buffer-mb <N>"), Description("Feature pool: bound on the stored features."), DefaultValue(4096)]
    public int FeatureBufferMb { get; init; } = 4096;

    public bool UsesFeaturePool => FeaturePool is not null || FreshNetworks;

    /// <summary>The feature-pool options; the kernel is the convolutional NNGP named (ConvNet3 when --architecture is fc).</summary>
    public FeaturePoolOptions ToPoolOptions(PreparedDataset? data = null)
    {
        var kip = ToOptions(data);
        var spec = kip.Kernel with { Kind = KernelKind.Nngp, RandomFeatures = null };
        if (!spec.IsConvolutional) spec = spec with { Architecture = KernelArchitecture.ConvNet3 };
        return new FeaturePoolOptions
        {
            Kernel = spec,
            PoolSize = FeaturePool ?? PoolSample,
            PoolSample = PoolSample,
            Width = RandomFeatureWidth ?? FeaturePoolOptions.DefaultWidth,
            FreshNetworks = FreshNetworks,
            TargetSubset = PoolTargets,
            TargetBatch = TargetBatch,
            HeldOutNetworks = HeldOutNetworks,
            ValidationPerClass = ValidationPerClass,
            ValidateEvery = ValidateEvery,
            SupportPerClass = SupportPerClass,
            Steps = Steps,
            LearningRate = LearningRate,
            LearnLabels = kip.LearnLabels,
            Mirror = Mirror,
            Initialization = kip.Initialization,
            Loss = Loss.ToLowerInvariant() switch
            {
                "mse" => PoolLoss.Mse,
                "platt" => PoolLoss.Platt,
                _ => throw new ArgumentException($"--loss: expected mse or platt, got '{Loss}'"),
            },
            Regularization = Regularization,
            Seed = Seed,
            NetworkSeed = RandomFeatureSeed,
            MaxBufferBytes = (long)FeatureBufferMb << 20,
        };
    }

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
        if (UsesFeaturePool && Method.ToLowerInvariant() != "kip") return ValidationResult.Error("--feature-pool and --fresh-networks need --method kip");
        if (UsesFeaturePool && RandomFeatures is not null) return ValidationResult.Error("--feature-pool draws its own networks: leave out --random-features");
        if (Mirror && !UsesFeaturePool) return ValidationResult.Error("--mirror needs --feature-pool or --fresh-networks");
        if (NoExactBaseline && !UsesFeaturePool) return ValidationResult.Error("--no-exact-baseline needs --feature-pool or --fresh-networks");
        if (TestSubset < 0) return ValidationResult.Error("--test-subset must not be negative");
        if (FeatureBufferMb < 1) return ValidationResult.Error("--feature-buffer-mb must be positive");
        try
        {
            ToOptions().Validate();
            if (UsesFeaturePool) ToPoolOptions().Validate();
        }
        catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
        return ValidationResult.Success();
    }
}

public sealed class KipCommand : Command<KipSettings>
{
    public override int Execute(CommandContext context, KipSettings settings, CancellationToken cancellation)
    {
        if (settings.UsesFeaturePool)
            return FeaturePoolKip.Execute(settings, cancellation);
        var wall = Stopwatch.StartNew();
        using var data = DatasetLoading.Load(settings, settings.ToOptions().Method == DistillationMethod.Kip ? "KIP" : "Label Solve");
        var options = settings.ToOptions(data);
        using var signals = new InterruptSignals(cancellation);
        try
        {
            var summary = RunProgress.Run(options, (report, token) =>
                LocalRun.Execute(data, options, settings.Output, settings.Resume, report, token), signals.Token);
            PrintSummary(summary, wall.Elapsed);
            return 0;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine($"[yellow]Interrupted.[/] Progress is saved; continue with [bold]--resume --out {Markup.Escape(settings.Output)}[/].");
            return 130;
        }
    }

    /// <param name="wall">loading included; a Label Solve's time is all here, it takes no steps.</param>
    private static void PrintSummary(RunSummary summary, TimeSpan wall)
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
            $"result dataset={summary.Dataset} method={summary.Method} support={summary.SupportSize} test_accuracy={summary.TestAccuracy:F4} steps={summary.Steps} seconds={summary.TrainingSeconds:F2} wall_seconds={wall.TotalSeconds:F1} steps_per_second={summary.StepsPerSecond:F3} peak_rss_mb={summary.PeakRssMb:F0}"));
    }
}
