using System.ComponentModel;
using System.Diagnostics;
using Distill.Core.Data;
using Distill.Core.Output;
using Distill.Core.Transfer;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

public sealed class TransferSettings : DatasetSettings
{
    [CommandOption("--distilled <PATH>"), Description("A distilled.safetensors written by 'distill kip': its preprocessed images and learned labels are the training set.")]
    public string? Distilled { get; init; }

    [CommandOption("--random-subset <N>"), Description("Instead of a distilled set: N real training images, class-balanced, drawn with --subset-seed (the baseline).")]
    public int? RandomSubset { get; init; }

    [CommandOption("--subset-seed <N>"), Description("Seed of the random subset and of the held-out split."), DefaultValue(0)]
    public int SubsetSeed { get; init; }

    [CommandOption("--protocol <NAME>"), Description("standard (instance norm, cross-entropy on argmax labels, 300 epochs, lr x0.1 at half time) | kernel (no norm, MSE on the labels, early stopping on held-out training images)."), DefaultValue("kernel")]
    public string Protocol { get; init; } = "kernel";

    [CommandOption("--seeds <N>"), Description("Networks trained, with seeds 0..N-1."), DefaultValue(5)]
    public int Seeds { get; init; } = 5;

    [CommandOption("--width <N>"), Description("Channels of ConvNet-3's convolutions."), DefaultValue(ConvNet3.DefaultWidth)]
    public int Width { get; init; } = ConvNet3.DefaultWidth;

    [CommandOption("--epochs <N>"), Description("Passes over the training set (default: 300 standard, 1000 kernel).")]
    public int? Epochs { get; init; }

    [CommandOption("--lr <X>"), Description("SGD learning rate (default 0.01).")]
    public double? LearningRate { get; init; }

    [CommandOption("--weight-decay <X>"), Description("SGD weight decay (default: 5e-4 standard, 0 kernel).")]
    public double? WeightDecay { get; init; }

    [CommandOption("--batch-size <N>"), Description("Training batch (default 256).")]
    public int? BatchSize { get; init; }

    [CommandOption("--held-out <N>"), Description("Kernel protocol: class-balanced training images (disjoint from a random subset) scored for early stopping; 0 keeps the last network."), DefaultValue(1000)]
    public int HeldOut { get; init; } = 1000;

    [CommandOption("--eval-every <N>"), Description("Kernel protocol: epochs between held-out evaluations (default 50).")]
    public int? EvalEvery { get; init; }

    [CommandOption("--patience <N>"), Description("Kernel protocol: held-out evaluations without improvement before stopping (0: never; default 6).")]
    public int? Patience { get; init; }

    [CommandOption("--centering"), Description("Kernel protocol: train f(x) - f_0(x), f_0 the network at initialisation (RFAD).")]
    public bool Centering { get; init; }

    [CommandOption("--label-scale <X>"), Description("Kernel protocol: factor on the MSE targets (RFAD's label scaling)."), DefaultValue(1.0)]
    public double LabelScale { get; init; } = 1.0;

    [CommandOption("--init <LAW>"), Description("default (PyTorch's uniform law) | kernel (weights N(0, 2/fan_in), biases N(0, 0.01): the NNGP's law, as RFAD's finite networks)."), DefaultValue("default")]
    public string Init { get; init; } = "default";

    [CommandOption("--max-test <N>"), Description("Score on a fixed random N of the test images (quick, scaled-down runs); default all.")]
    public int? MaxTest { get; init; }

    public TransferOptions Options()
    {
        var protocol = Protocol.ToLowerInvariant() switch
        {
            "standard" => TransferProtocol.Standard,
            "kernel" => TransferProtocol.Kernel,
            _ => throw new ArgumentException($"--protocol: expected standard or kernel, got '{Protocol}'"),
        };
        var kernelInit = Init.ToLowerInvariant() switch
        {
            "default" => false,
            "kernel" => true,
            _ => throw new ArgumentException($"--init: expected default or kernel, got '{Init}'"),
        };
        var o = TransferOptions.For(protocol) with { Width = Width, Centering = Centering, LabelScale = LabelScale, KernelInitialization = kernelInit };
        if (Epochs is { } e) o = o with { Epochs = e };
        if (LearningRate is { } lr) o = o with { LearningRate = lr };
        if (WeightDecay is { } wd) o = o with { WeightDecay = wd };
        if (BatchSize is { } b) o = o with { BatchSize = b };
        if (EvalEvery is { } every) o = o with { EvalEvery = every };
        if (Patience is { } p) o = o with { Patience = p };
        return o;
    }

    public override ValidationResult Validate()
    {
        if ((Distilled is null) == (RandomSubset is null))
            return ValidationResult.Error("give one of --distilled or --random-subset");
        if (Distilled is not null && !File.Exists(Distilled)) return ValidationResult.Error($"--distilled: file '{Distilled}' does not exist");
        if (RandomSubset is < 1) return ValidationResult.Error("--random-subset must be positive");
        if (Seeds < 1) return ValidationResult.Error("--seeds must be positive");
        if (HeldOut < 0) return ValidationResult.Error("--held-out must not be negative");
        if (MaxTest is < 1) return ValidationResult.Error("--max-test must be positive");
        try { Options().Validate(); }
        catch (ArgumentException ex) { return ValidationResult.Error(ex.Message); }
        return base.Validate();
    }
}

/// <summary>
/// Trains finite ConvNet-3 networks on a distilled set (or a random real subset) and reports
/// their test accuracy over seeds. Images are the preprocessed features the kernel saw (the
/// distilled file's 'images', or the dataset under the same preprocessing), reshaped to C x H x W.
/// </summary>
public sealed class TransferCommand : Command<TransferSettings>
{
    public override int Execute(CommandContext context, TransferSettings settings, CancellationToken cancellation)
    {
        var options = settings.Options();
        Dictionary<string, SafetensorsTensor>? distilled = null;
        if (settings.Distilled is not null)
        {
            (distilled, var metadata) = SafetensorsFile.Read(settings.Distilled);
            if (metadata.TryGetValue("preprocessing.zca", out var zca) && (zca == "true") != settings.Zca)
                throw new ArgumentException($"--zca: the distilled set was made with preprocessing.zca={zca}; pass the same setting");
        }
        using var data = DatasetLoading.Load(settings, "Transfer");
        var train = data.Source.Train;
        var device = data.TrainImages.device;
        using var scope = NewDisposeScope();

        int supportCount = settings.RandomSubset ?? 0;
        int heldOutCount = options.Protocol == TransferProtocol.Kernel && options.EvalEvery > 0 ? settings.HeldOut : 0;
        var (subsetIndex, heldOutIndex) = ClassBalancedSplit.Draw(train.Labels, data.ClassCount, supportCount, heldOutCount, settings.SubsetSeed);

        Tensor images, targets;
        string set;
        if (distilled is not null)
        {
            var stored = distilled["images"];
            var labels = distilled["labels"];
            if (stored.Shape.Length != 4 || stored.Shape[1] != train.Channels || stored.Shape[2] != train.Height || stored.Shape[3] != train.Width)
                throw new ArgumentException($"--distilled: images are [{string.Join(", ", stored.Shape)}], the dataset's are N x {train.Channels}x{train.Height}x{train.Width}");
            if (labels.Shape.Length != 2 || labels.Shape[1] != data.ClassCount)
                throw new ArgumentException($"--distilled: labels are [{string.Join(", ", labels.Shape)}], expected N x {data.ClassCount}");
            images = tensor(stored.ToFloats(), stored.Shape, device: device);
            targets = tensor(labels.ToFloats(), labels.Shape, device: device);
            set = "distilled";
        }
        else
        {
            using var index = tensor(subsetIndex.Select(i => (long)i).ToArray(), device: device);
            images = data.TrainImages.index_select(0, index);
            targets = data.TrainTargets.index_select(0, index);
            set = $"random-{subsetIndex.Length}";
        }
        using var sets = TransferSets.For(data, heldOutIndex, settings.MaxTest);
        var (heldOut, test) = (sets.HeldOut, sets.Test);
        AnsiConsole.MarkupLine($"[bold]{options.Protocol}[/] protocol on {set} ({images.shape[0]} images), ConvNet-3 width {options.Width}" +
            $"{(options.InstanceNorm ? " + instance norm" : "")}, {(options.CrossEntropy ? "cross-entropy" : "MSE")}, lr {options.LearningRate}, " +
            $"{options.Epochs} epochs; held-out {heldOut?.Count ?? 0}, test {test.Count}");
        var watch = Stopwatch.StartNew();
        var trainer = new TransferTrainer(options, train.Channels, train.Height, train.Width, data.ClassCount);
        var result = trainer.Run(Enumerable.Range(0, settings.Seeds).Select(s => (long)s), images, targets, heldOut, test,
            s => Console.WriteLine(FormattableString.Invariant(
                $"seed={s.Seed} test_accuracy={s.TestAccuracy:F4} epochs={s.Epochs} best_epoch={s.BestEpoch} held_out={(s.BestHeldOutAccuracy is { } h ? h.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) : "-")} loss={s.InitialLoss:G4}->{s.FinalLoss:G4} seconds={watch.Elapsed.TotalSeconds:F1}")),
            cancellation);
        AnsiConsole.MarkupLine($"test accuracy [bold]{result.Mean:P2}[/] ± {result.Std:P2} over {result.Seeds.Count} seeds");
        Console.WriteLine(FormattableString.Invariant(
            $"result test_accuracy={result.Mean:F4} std={result.Std:F4} seeds={result.Seeds.Count} protocol={options.Protocol.ToString().ToLowerInvariant()} set={set} width={options.Width} epochs={options.Epochs} test_count={test.Count} seconds={watch.Elapsed.TotalSeconds:F1}"));
        return 0;
    }
}
