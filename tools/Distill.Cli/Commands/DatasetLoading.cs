using System.Diagnostics;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Preprocessing;
using Distill.Core.Runtime;
using Spectre.Console;

namespace Distill.Cli.Commands;

/// <summary>Loads and preprocesses the dataset named by the settings, with a status line while it works.</summary>
internal static class DatasetLoading
{
    public static PreparedDataset Load(DatasetSettings settings, string what, bool showKernel = true)
    {
        TorchRuntime.Configure(settings.Threads);
        TorchRuntime.UseDevice(settings.Device, "--device");
        var watch = Stopwatch.StartNew();
        PreparedDataset? prepared = null;
        AnsiConsole.Status().Start($"Loading {Markup.Escape(settings.Data)}", status =>
        {
            var dataset = DatasetLoader.Load(settings.Data, settings.Format);
            if (settings.MaxTrain is { } max && max < dataset.Train.Count)
            {
                // Class-balanced and random: folder datasets list their images class by class.
                var rows = new TargetSampler(dataset.Train.Labels, dataset.Train.ClassCount, seed: 0).Sample(max, step: 0, stream: 5);
                Array.Sort(rows);
                dataset = dataset with { Train = dataset.Train.Rows(rows) };
            }
            status.Status($"Preprocessing {dataset.Train.Count} training images{(settings.Zca ? " (ZCA)" : "")}");
            prepared = PreparedDataset.Prepare(dataset, new PreprocessingSpec(Standardize: true, settings.Zca, settings.ZcaRegularization));
        });
        var d = prepared!.Source.Train;
        AnsiConsole.MarkupLine($"[bold]{what}[/] on [bold]{Markup.Escape(prepared.Name)}[/]: {d.Count} train / {prepared.Source.Test.Count} test images, " +
            $"{d.Channels}x{d.Height}x{d.Width}, {d.ClassCount} classes{(showKernel ? $"; kernel {Markup.Escape(settings.KernelSpec(prepared).ToString())}" : "")} " +
            $"[grey](loaded in {watch.Elapsed.TotalSeconds:F1} s)[/]");
        return prepared;
    }
}
