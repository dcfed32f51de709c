using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Distill.Core.Distillation;
using Distill.Core.Kernels;
using Distill.Core.Runtime;
using Distill.Core.Runs;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

public sealed class StepBenchmarkSettings : CommandSettings
{
    [CommandOption("--support <N>"), DefaultValue(10)]
    public int Support { get; init; } = 10;

    [CommandOption("--targets <N>"), DefaultValue(5000)]
    public int Targets { get; init; } = 5000;

    [CommandOption("--features <N>"), Description("784 for MNIST, 3072 for CIFAR-10."), DefaultValue(784)]
    public int Features { get; init; } = 784;

    [CommandOption("--train <N>"), Description("Size of the pool targets are drawn from."), DefaultValue(60000)]
    public int Train { get; init; } = 60000;

    [CommandOption("--steps <N>"), DefaultValue(50)]
    public int Steps { get; init; } = 50;

    [CommandOption("--rounds <N>"), Description("Blocks of steps each side runs, alternating."), DefaultValue(5)]
    public int Rounds { get; init; } = 5;

    [CommandOption("--minimal-kernel-dtype <TYPE>"), Description("float64 (the engine's precision) or float32 (kernel in float32, solve in float64)."), DefaultValue("float64")]
    public string MinimalKernelDtype { get; init; } = "float64";

    [CommandOption("--threads <N>")]
    public int? Threads { get; init; }
}

/// <summary>
/// Times the engine's KIP step (sampling, kernels, solve, backward, Adam) on random data
/// of a chosen shape beside <see cref="MinimalKipLoop"/>, the same math written plainly with
/// TorchSharp autograd, in the same process on the same data. Both sides first take one
/// step on the same support set and target batch and must report the same loss; then,
/// after a warm-up of each, they alternate blocks of steps and each side's median counts.
/// </summary>
public sealed class StepBenchmarkCommand : Command<StepBenchmarkSettings>
{
    /// <summary>Largest relative difference allowed between the two sides' first losses.</summary>
    public const double LossTolerance = 1e-6;

    public override int Execute(CommandContext context, StepBenchmarkSettings settings, CancellationToken cancellation)
    {
        if (settings.Rounds < 1 || settings.Steps < settings.Rounds)
            throw new ArgumentException($"--steps ({settings.Steps}) must be at least --rounds ({settings.Rounds}), which must be positive");
        var kernelType = settings.MinimalKernelDtype switch
        {
            "float64" => ScalarType.Float64,
            "float32" => ScalarType.Float32,
            _ => throw new ArgumentException($"--minimal-kernel-dtype: float64 or float32, got '{settings.MinimalKernelDtype}'"),
        };
        TorchRuntime.Configure(settings.Threads);
        const int classes = 10;
        const double learningRate = 0.01;
        var generator = new Generator(0);
        using var train = randn(settings.Train, settings.Features, dtype: ScalarType.Float64, generator: generator);
        var labels = Enumerable.Range(0, settings.Train).Select(i => i % classes).ToArray();
        using var classOf = tensor(labels.Select(l => (long)l).ToArray(), dtype: ScalarType.Int64);
        using var targets = CenteredOneHot.Encode(labels, classes);
        var sampler = new TargetSampler(labels, classes, seed: 0);
        using var support = randn(settings.Support, settings.Features, dtype: ScalarType.Float64, generator: generator);
        using var supportLabels = CenteredOneHot.Encode(Enumerable.Range(0, settings.Support).Select(i => i % classes).ToArray(), classes);
        using var minimal = new MinimalKipLoop(train, targets, classOf, classes, settings.Targets, support, supportLabels, learningRate, seed: 0, kernelType);
        var objective = new KipObjective(new KernelSpec().Create());
        using var imageAdam = new AdamOptimizer(learningRate, support);
        using var labelAdam = new AdamOptimizer(learningRate, supportLabels);

        double EngineStep(long step)
        {
            using var scope = NewDisposeScope();
            var index = tensor(sampler.Sample(settings.Targets, step), dtype: ScalarType.Int64);
            using var result = objective.ShardStep(support, supportLabels, train.index_select(0, index), targets.index_select(0, index),
                settings.Targets, wantLabelGradient: true);
            imageAdam.Step(support, result.SupportGradient);
            labelAdam.Step(supportLabels, result.LabelGradient!);
            return result.Loss;
        }

        double MinimalStep()
        {
            using var scope = NewDisposeScope();
            return minimal.Step(minimal.SampleIndex());
        }

        // The independent check: one step of each on the same support set and target batch.
        double engineLoss, minimalLoss;
        using (var first = tensor(sampler.Sample(settings.Targets, -1), dtype: ScalarType.Int64))
        {
            minimalLoss = minimal.Step(first);
            engineLoss = EngineStep(-1);
        }
        var lossDifference = Math.Abs(engineLoss - minimalLoss) / Math.Max(Math.Abs(minimalLoss), double.Epsilon);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"first step, same data: engine loss {engineLoss:R}, minimal loop loss {minimalLoss:R}, relative difference {lossDifference:E2}"));
        if (!(lossDifference <= LossTolerance))
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"step-benchmark: the engine and the minimal loop disagree on the first step's loss ({engineLoss:R} vs {minimalLoss:R}, relative {lossDifference:E2} > {LossTolerance:E0}): they do not compute the same math"));
            return 1;
        }

        for (int i = 0; i < 5; i++) { EngineStep(-2 - i); MinimalStep(); }
        var engineTimes = new List<double>();
        var minimalTimes = new List<double>();
        long engineStep = 0;
        void Time(List<double> times, int count, Func<double> step)
        {
            for (int i = 0; i < count; i++)
            {
                var watch = Stopwatch.StartNew();
                step();
                times.Add(watch.Elapsed.TotalMilliseconds);
            }
        }
        for (int round = 0; round < settings.Rounds; round++)
        {
            // Blocks of near-equal size whose total is --steps; the side that goes first alternates.
            int count = settings.Steps / settings.Rounds + (round < settings.Steps % settings.Rounds ? 1 : 0);
            for (int side = 0; side < 2; side++)
            {
                if ((side + round) % 2 == 0) Time(engineTimes, count, () => EngineStep(engineStep++));
                else Time(minimalTimes, count, MinimalStep);
            }
        }
        var median = Median(engineTimes);
        var minimalMedian = Median(minimalTimes);
        var ratio = median / minimalMedian;
        AnsiConsole.MarkupLine($"KIP step, n_s={settings.Support}, n_t={settings.Targets}, d={settings.Features}, {get_num_threads()} threads, " +
            $"{settings.Rounds} alternating rounds: engine median [bold]{median:F1} ms[/] (mean {engineTimes.Average():F1}), " +
            $"minimal TorchSharp loop median [bold]{minimalMedian:F1} ms[/] (mean {minimalTimes.Average():F1}): ratio [bold]{ratio:F2}[/]");
        var seconds = engineTimes.Sum() / 1000;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result support={settings.Support} engine_ms={median:F2} minimal_ms={minimalMedian:F2} ratio={ratio:F3} rounds={settings.Rounds} minimal_kernel={settings.MinimalKernelDtype} " +
            $"engine_loss={engineLoss:G10} minimal_loss={minimalLoss:G10} loss_rel_diff={lossDifference:E2} " +
            $"targets={settings.Targets} features={settings.Features} threads={get_num_threads()} steps={settings.Steps} seconds={seconds:F3} " +
            $"steps_per_second={settings.Steps / seconds:F2} median_ms={median:F2} mean_ms={engineTimes.Average():F2} " +
            $"minimal_mean_ms={minimalTimes.Average():F2} peak_rss_mb={LocalRun.PeakResidentMegabytes():F0}"));
        return 0;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
