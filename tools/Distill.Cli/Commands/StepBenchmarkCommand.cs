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

    [CommandOption("--threads <N>")]
    public int? Threads { get; init; }
}

/// <summary>
/// Times the engine's KIP step (sampling, kernels, solve, backward, Adam) on random data
/// of a chosen shape, the comparison in published-results.md. Prints ms per step.
/// </summary>
public sealed class StepBenchmarkCommand : Command<StepBenchmarkSettings>
{
    public override int Execute(CommandContext context, StepBenchmarkSettings settings, CancellationToken cancellation)
    {
        TorchRuntime.Configure(settings.Threads);
        const int classes = 10;
        var generator = new Generator(0);
        using var train = randn(settings.Train, settings.Features, dtype: ScalarType.Float64, generator: generator);
        var labels = Enumerable.Range(0, settings.Train).Select(i => i % classes).ToArray();
        using var targets = CenteredOneHot.Encode(labels, classes);
        var sampler = new TargetSampler(labels, classes, seed: 0);
        using var support = randn(settings.Support, settings.Features, dtype: ScalarType.Float64, generator: generator);
        using var supportLabels = CenteredOneHot.Encode(Enumerable.Range(0, settings.Support).Select(i => i % classes).ToArray(), classes);
        var objective = new KipObjective(new KernelSpec().Create());
        using var imageAdam = new AdamOptimizer(0.01, support);
        using var labelAdam = new AdamOptimizer(0.01, supportLabels);

        void Step(long step)
        {
            using var scope = NewDisposeScope();
            var index = tensor(sampler.Sample(settings.Targets, step), dtype: ScalarType.Int64);
            using var result = objective.ShardStep(support, supportLabels, train.index_select(0, index), targets.index_select(0, index),
                settings.Targets, wantLabelGradient: true);
            imageAdam.Step(support, result.SupportGradient);
            labelAdam.Step(supportLabels, result.LabelGradient!);
        }

        for (int i = 0; i < 5; i++) Step(-1 - i);
        var times = new List<double>();
        for (int i = 0; i < settings.Steps; i++)
        {
            var watch = Stopwatch.StartNew();
            Step(i);
            times.Add(watch.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        var median = times[times.Count / 2];
        AnsiConsole.MarkupLine($"KIP step, n_s={settings.Support}, n_t={settings.Targets}, d={settings.Features}, {get_num_threads()} threads: " +
            $"median [bold]{median:F1} ms[/], mean {times.Average():F1} ms");
        var seconds = times.Sum() / 1000;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result support={settings.Support} targets={settings.Targets} features={settings.Features} threads={get_num_threads()} steps={settings.Steps} seconds={seconds:F3} steps_per_second={settings.Steps / seconds:F2} median_ms={median:F2} mean_ms={times.Average():F2} peak_rss_mb={LocalRun.PeakResidentMegabytes():F0}"));
        return 0;
    }
}
