using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.FeaturePool;
using Distill.Core.Kernels;
using Distill.Core.Preprocessing;
using Distill.Core.Runtime;
using Distill.Core.Runs;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

public sealed class PoolStepBenchmarkSettings : CommandSettings
{
    [CommandOption("--support <N>"), DefaultValue(10)]
    public int Support { get; init; } = 10;

    [CommandOption("--targets <N>"), Description("Target batch of the pooled and FC steps."), DefaultValue(2000)]
    public int Targets { get; init; } = 2000;

    [CommandOption("--exact-targets <N>"), Description("Target batch of the exact ConvNet3 step (slow: its time is also scaled to --targets)."), DefaultValue(100)]
    public int ExactTargets { get; init; } = 100;

    [CommandOption("--pool <P>"), DefaultValue(8)]
    public int Pool { get; init; } = 8;

    [CommandOption("--sample <K>"), DefaultValue(8)]
    public int Sample { get; init; } = 8;

    [CommandOption("--width <N>"), DefaultValue(FeaturePoolOptions.DefaultWidth)]
    public int Width { get; init; } = FeaturePoolOptions.DefaultWidth;

    [CommandOption("--steps <N>"), Description("Timed pooled and FC steps."), DefaultValue(20)]
    public int Steps { get; init; } = 20;

    [CommandOption("--exact-steps <N>"), Description("Timed exact ConvNet3 steps (0: skip)."), DefaultValue(2)]
    public int ExactSteps { get; init; } = 2;

    [CommandOption("--exact-eval <N>"), Description("Test images scored by KRR with the exact ConvNet3 NNGP against the support (0: skip)."), DefaultValue(0)]
    public int ExactEval { get; init; }

    [CommandOption("--exact-gram <N>"), Description("Images of a support Gram matrix with the exact ConvNet3 NNGP, timed as the full square, the kernel's symmetric K(x, x) and in reported blocks (0: skip)."), DefaultValue(0)]
    public int ExactGram { get; init; }

    [CommandOption("--threads <N>")]
    public int? Threads { get; init; }
}

/// <summary>
/// Seconds per KIP step on random CIFAR-shaped data (3 x 32 x 32, ten classes), in one process:
/// pooled random-feature ConvNet3 KIP (target features stored), the exact ConvNet3 NNGP kernel's
/// KIP step (on fewer targets, also scaled linearly to the same batch) and the FC NTK's step.
/// </summary>
public sealed class PoolStepBenchmarkCommand : Command<PoolStepBenchmarkSettings>
{
    public override int Execute(CommandContext context, PoolStepBenchmarkSettings settings, CancellationToken cancellation)
    {
        TorchRuntime.Configure(settings.Threads);
        const int classes = 10, side = 32, channels = 3;
        int d = channels * side * side;
        var random = new Random(0);
        LabeledImages Split(int n) => new(Enumerable.Range(0, n * d).Select(_ => (float)random.NextDouble()).ToArray(),
            Enumerable.Range(0, n).Select(i => i % classes).ToArray(), channels, side, side, Enumerable.Range(0, classes).Select(c => $"c{c}").ToArray());
        int train = Math.Max(Math.Max(settings.Targets, settings.Support), settings.ExactGram) + classes * 10;
        using var data = PreparedDataset.Prepare(new ImageDataset("random-cifar-shaped", Split(train), Split(classes)), new PreprocessingSpec());
        var spec = new KernelSpec(KernelKind.Nngp, Architecture: KernelArchitecture.ConvNet3, ImageChannels: channels, ImageHeight: side, ImageWidth: side);

        var setup = Stopwatch.StartNew();
        using var pool = new FeaturePoolDistiller(data, new FeaturePoolOptions
        {
            Kernel = spec, PoolSize = settings.Pool, PoolSample = settings.Sample, Width = settings.Width,
            TargetSubset = settings.Targets, TargetBatch = settings.Targets, HeldOutNetworks = 0, ValidateEvery = 0,
            SupportPerClass = Math.Max(1, settings.Support / classes),
        });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"pool set-up: {settings.Pool} networks x {settings.Targets} targets in {setup.Elapsed.TotalSeconds:F1} s, buffer {pool.BufferBytes / 1048576.0:F0} MiB"));
        pool.TakeStep();
        var poolMs = Median(Enumerable.Range(0, settings.Steps).Select(_ => pool.TakeStep().Elapsed.TotalMilliseconds));

        double KipStep(IKernel kernel, int targets, Tensor support, Tensor labels, AdamOptimizer adam)
        {
            using var scope = NewDisposeScope();
            var watch = Stopwatch.StartNew();
            var rows = tensor(Enumerable.Range(0, targets).Select(i => (long)i).ToArray());
            using var result = new KipObjective(kernel).ShardStep(support, labels, data.TrainImages.index_select(0, rows), data.TrainTargets.index_select(0, rows), targets, true);
            adam.Step(support, result.SupportGradient);
            return watch.Elapsed.TotalMilliseconds;
        }
        using var support = data.TrainImages.narrow(0, 0, pool.SupportImages.shape[0]).clone();
        using var labels = pool.SupportLabels.clone();
        using var adam = new AdamOptimizer(0.01, support);
        var fc = new KernelSpec().Create();
        KipStep(fc, settings.Targets, support, labels, adam);
        var fcMs = Median(Enumerable.Range(0, settings.Steps).Select(_ => KipStep(fc, settings.Targets, support, labels, adam)));
        double exactMs = double.NaN;
        if (settings.ExactSteps > 0)
        {
            var exact = spec.Create();
            exactMs = Median(Enumerable.Range(0, settings.ExactSteps).Select(_ => KipStep(exact, settings.ExactTargets, support, labels, adam)));
        }
        double evalMs = double.NaN;
        if (settings.ExactEval > 0)
        {
            using var scope = NewDisposeScope();
            var rows = tensor(Enumerable.Range(0, settings.ExactEval).Select(i => (long)i).ToArray());
            var watch = Stopwatch.StartNew();
            KrrEvaluator.Evaluate(spec.Create(), support, labels, data.TrainImages.index_select(0, rows),
                Enumerable.Range(0, settings.ExactEval).Select(i => i % classes).ToArray(), data.TrainTargets.index_select(0, rows), 1e-6, FeaturePoolRun.ExactBlockRows);
            evalMs = watch.Elapsed.TotalMilliseconds / settings.ExactEval;
        }
        if (settings.ExactGram > 0)
            SupportGram(spec.Create(), data.TrainImages.narrow(0, 0, settings.ExactGram));
        double exactScaled = exactMs * settings.Targets / settings.ExactTargets;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"KIP step, n_s={pool.SupportImages.shape[0]}, 3x32x32, {get_num_threads()} threads: pooled ConvNet3 ({settings.Sample} of {settings.Pool} networks, width {settings.Width}, {settings.Targets} targets) {poolMs:F1} ms; " +
            $"FC NTK ({settings.Targets} targets) {fcMs:F1} ms; exact ConvNet3 NNGP ({settings.ExactTargets} targets) {exactMs:F0} ms, ~{exactScaled:F0} ms scaled to {settings.Targets} targets"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result support={pool.SupportImages.shape[0]} pool_ms={poolMs:F2} fc_ms={fcMs:F2} exact_ms={exactMs:F1} exact_targets={settings.ExactTargets} exact_ms_scaled={exactScaled:F0} " +
            $"exact_over_pool={exactScaled / poolMs:F1} pool_over_fc={poolMs / fcMs:F2} targets={settings.Targets} pool={settings.Pool} sample={settings.Sample} width={settings.Width} threads={get_num_threads()} exact_eval_ms_per_image={evalMs:F1} peak_rss_mb={LocalRun.PeakResidentMegabytes():F0}"));
        return 0;
    }

    /// <summary>
    /// The support's Gram matrix three ways in one invocation: K(x, x') on the full square (what
    /// K(x, x) cost before it computed only the upper triangle), the kernel's K(x, x), and the
    /// blocks that evaluations and Label Solves compute with progress.
    /// </summary>
    private static void SupportGram(IKernel kernel, Tensor x)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double Seconds(Func<Tensor> gram, out Tensor value)
        {
            var watch = Stopwatch.StartNew();
            value = gram();
            return watch.Elapsed.TotalSeconds;
        }
        long n = x.shape[0], reports = 0;
        var full = Seconds(() => kernel.Compute(x, x), out var square);
        var symmetric = Seconds(() => kernel.ComputeSymmetric(x), out var own);
        var blocked = Seconds(() => GramMatrix.ComputeSymmetric(kernel, x, progress: _ => reports++), out var blocks);
        var offDiagonal = ones(n, n, dtype: x.dtype).sub_(eye(n, dtype: x.dtype));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"support_gram n={n} pairs_full={n * n} pairs_upper={n * (n + 1) / 2} full_s={full:F1} symmetric_s={symmetric:F1} blocked_s={blocked:F1} reports={reports} " +
            $"full_over_symmetric={full / symmetric:F2} full_over_blocked={full / blocked:F2} " +
            $"max_diff_off_diagonal={square.sub(own).mul_(offDiagonal).abs_().max().item<double>():E1} max_diff_blocked={blocks.sub(own).abs_().max().item<double>():E1}"));
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
