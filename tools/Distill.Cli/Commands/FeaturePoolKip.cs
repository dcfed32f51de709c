using System.Diagnostics;
using System.Globalization;
using Distill.Core.FeaturePool;
using Spectre.Console;

namespace Distill.Cli.Commands;

/// <summary>
/// <c>distill kip --feature-pool P</c> (or <c>--fresh-networks</c>): KIP on random ConvNet features,
/// progress as plain lines, the outputs of a KIP run, and a result line with the exact-kernel and
/// held-out-network accuracies of the distilled set and of the initial random real support (baseline).
/// </summary>
internal static class FeaturePoolKip
{
    public static int Execute(KipSettings settings, CancellationToken cancellation)
    {
        var total = Stopwatch.StartNew();
        using var data = DatasetLoading.Load(settings, settings.FreshNetworks ? "KIP with fresh random networks (RFAD)" : "KIP on a random-feature pool", showKernel: false);
        var options = settings.ToPoolOptions(data);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{(options.FreshNetworks ? $"{options.PoolSample} fresh networks per step" : $"pool of {options.PoolSize} networks, {options.PoolSample} sampled per step")}, width {options.Width}, {options.HeldOutNetworks} held-out networks; kernel estimated: {options.Kernel}"));
        using var signals = new InterruptSignals(cancellation);
        try
        {
            var start = total.Elapsed.TotalSeconds;
            var s = FeaturePoolRun.Execute(data, options, settings.Output, settings.TestSubset, line => Console.WriteLine(line), signals.Token, settings.Resume,
                exactBaseline: !settings.NoExactBaseline);
            var seconds = total.Elapsed.TotalSeconds - start;
            var subset = s.TestSubset < data.TestLabels.Length ? $" (a fixed class-balanced subset of {data.TestLabels.Length})" : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"distilled: exact {options.Kernel.Architecture} NNGP KRR {s.Final.ExactAccuracy:P2}, {options.HeldOutNetworks} held-out networks {s.Final.HeldOutAccuracy:P2}; random real baseline {s.Baseline.ExactAccuracy:P2} / {s.Baseline.HeldOutAccuracy:P2}; on {s.TestSubset} test images{subset}"));
            foreach (var (name, path) in s.Outputs) Console.WriteLine($"{name}: {path}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"result dataset={s.Dataset} method=kip-{s.Mode} support={s.SupportSize} test_accuracy={s.Final.ExactAccuracy:F4} test_subset={s.TestSubset} held_out_accuracy={s.Final.HeldOutAccuracy:F4} held_out_networks={options.HeldOutNetworks} baseline={s.Baseline.ExactAccuracy:F4} baseline_held_out={s.Baseline.HeldOutAccuracy:F4} chosen_step={s.ChosenStep} steps={s.Steps} seconds={seconds:F1} setup_seconds={s.SetupSeconds:F1} training_seconds={s.TrainingSeconds:F1} seconds_per_step={s.SecondsPerStep:F3} pool={options.PoolSize} sample={options.PoolSample} width={options.Width} buffer_mb={s.BufferBytes / 1048576.0:F0} peak_rss_mb={s.PeakRssMb:F0}"));
            return 0;
        }
        catch (OperationCanceledException)
        {
            AnsiConsole.MarkupLine($"[yellow]Interrupted.[/] Progress is saved; continue with [bold]--resume --out {Markup.Escape(settings.Output)}[/] (the pool's features are computed again first).");
            return 130;
        }
    }
}
