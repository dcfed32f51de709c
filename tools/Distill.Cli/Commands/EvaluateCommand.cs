using System.ComponentModel;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Output;
using Distill.Core.Runs;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

public sealed class EvaluateSettings : DatasetSettings
{
    [CommandArgument(0, "<DISTILLED>"), Description("A distilled.safetensors written by 'distill kip'.")]
    public string Distilled { get; init; } = "";

    public override ValidationResult Validate() =>
        !File.Exists(Distilled) ? ValidationResult.Error($"DISTILLED: file '{Distilled}' does not exist") : base.Validate();
}

/// <summary>Scores a distilled set with any kernel: the preprocessing recorded in the file is refitted on the train split.</summary>
public sealed class EvaluateCommand : Command<EvaluateSettings>
{
    public override int Execute(CommandContext context, EvaluateSettings settings, CancellationToken cancellation)
    {
        var (tensors, metadata) = SafetensorsFile.Read(settings.Distilled);
        if (metadata.TryGetValue("preprocessing.zca", out var zca) && (zca == "true") != settings.Zca)
            throw new ArgumentException($"--zca: the distilled set was made with preprocessing.zca={zca}; pass the same setting");
        using var data = DatasetLoading.Load(settings, "Evaluate");
        var images = tensors["images"];
        var labels = tensors["labels"];
        using var support = tensor(images.ToFloats(), [images.Shape[0], images.Shape[1..].Aggregate(1L, (a, b) => a * b)], device: data.TrainImages.device).to_type(ScalarType.Float64);
        using var supportLabels = tensor(labels.ToFloats(), labels.Shape, device: data.TrainImages.device).to_type(ScalarType.Float64);
        var result = KrrEvaluator.Evaluate(settings.KernelSpec(data).Create(), support, supportLabels,
            data.TestImages, data.TestLabels, data.TestTargets, settings.Regularization, settings.BlockRows,
            PhaseProgress.Reporter(RunPhase.Evaluation, 0, RunProgress.PrintPhase), cancellation);
        AnsiConsole.MarkupLine($"test accuracy [bold]{result.Accuracy:P2}[/], MSE {result.Mse:G4} on {result.Count} images ({result.Method})");
        Console.WriteLine(FormattableString.Invariant($"result test_accuracy={result.Accuracy:F4} mse={result.Mse:G6} count={result.Count}"));
        return 0;
    }
}
