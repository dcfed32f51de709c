using System.ComponentModel;
using Distill.Core.Data;
using Distill.Core.Kernels;
using Distill.Core.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Distill.Cli.Commands;

/// <summary>Options shared by every command that loads a dataset and a kernel.</summary>
public class DatasetSettings : CommandSettings
{
    [CommandOption("--data <PATH>"), Description("Dataset folder: IDX (MNIST-style), CIFAR-10/100 binary, or an image folder with train/ and test/.")]
    public string Data { get; init; } = "";

    [CommandOption("--format <FORMAT>"), Description("idx | cifar10 | cifar100 | folder (default: detected from the folder).")]
    public string? Format { get; init; }

    [CommandOption("--kernel <KIND>"), Description("ntk | nngp"), DefaultValue("ntk")]
    public string Kernel { get; init; } = "ntk";

    [CommandOption("--architecture <NAME>"), Description("fc | convnet | convnet3 | myrtle5; a convolutional kernel reads the dataset's C x H x W images."), DefaultValue("fc")]
    public string Architecture { get; init; } = "fc";

    [CommandOption("--readout <NAME>"), Description("Convolutional kernels: flatten | gap (global average pooling)."), DefaultValue("flatten")]
    public string Readout { get; init; } = "flatten";

    [CommandOption("--random-features <N>"), Description("Convolutional NNGP only: estimate it with N random finite networks (RFAD) instead of exactly.")]
    public int? RandomFeatures { get; init; }

    [CommandOption("--rf-width <N>"), Description("Channels of each random network's convolutions (default 256; 64 with --feature-pool).")]
    public int? RandomFeatureWidth { get; init; }

    [CommandOption("--rf-seed <N>"), Description("Seed the random networks are drawn from."), DefaultValue(0UL)]
    public ulong RandomFeatureSeed { get; init; }

    [CommandOption("--depth <N>"), Description("Hidden ReLU layers of the fully connected network."), DefaultValue(1)]
    public int Depth { get; init; } = 1;

    [CommandOption("--w-std <X>"), DefaultValue(1.4142135623730951)]
    public double WStd { get; init; } = Math.Sqrt(2);

    [CommandOption("--b-std <X>"), DefaultValue(0.1)]
    public double BStd { get; init; } = 0.1;

    [CommandOption("--reg <X>"), Description("Ridge, scaled by tr(K_ss)/n_s."), DefaultValue(1e-6)]
    public double Regularization { get; init; } = 1e-6;

    [CommandOption("--zca"), Description("Regularised ZCA whitening after standardisation.")]
    public bool Zca { get; init; }

    [CommandOption("--zca-reg <X>"), DefaultValue(0.1)]
    public double ZcaRegularization { get; init; } = 0.1;

    [CommandOption("--max-train <N>"), Description("Use a class-balanced random N of the training images (quick trials).")]
    public int? MaxTrain { get; init; }

    [CommandOption("--threads <N>"), Description("Intra-op threads for TorchSharp (default: all cores).")]
    public int? Threads { get; init; }

    [CommandOption("--device <DEVICE>"), Description("Where the engine computes: auto (CUDA when available), cpu, cuda or cuda:N."), DefaultValue("auto")]
    public string Device { get; init; } = "auto";

    [CommandOption("--block-rows <N>"), Description("Rows per Gram block; bounds memory."), DefaultValue(4096)]
    public int BlockRows { get; init; } = 4096;

    /// <summary>
    /// The kernel the options name. A convolutional one reads the loaded dataset's images; before
    /// the dataset is loaded (option checks) it reads a stand-in 1 x 32 x 32, which every
    /// architecture accepts, so only the image-independent options are checked then.
    /// </summary>
    public KernelSpec KernelSpec(PreparedDataset? data = null) => new(
        Kernel.ToLowerInvariant() switch
        {
            "ntk" => KernelKind.Ntk,
            "nngp" => KernelKind.Nngp,
            _ => throw new ArgumentException($"--kernel: expected ntk or nngp, got '{Kernel}'"),
        },
        Depth, WStd, BStd,
        Architecture.ToLowerInvariant() switch
        {
            "fc" => KernelArchitecture.FullyConnected,
            "convnet" => KernelArchitecture.ConvNet,
            "convnet3" => KernelArchitecture.ConvNet3,
            "myrtle5" => KernelArchitecture.Myrtle5,
            _ => throw new ArgumentException($"--architecture: expected fc, convnet, convnet3 or myrtle5, got '{Architecture}'"),
        },
        data?.Source.Train.Channels ?? 1, data?.Source.Train.Height ?? 32, data?.Source.Train.Width ?? 32,
        Readout.ToLowerInvariant() switch
        {
            "flatten" => KernelReadout.Flatten,
            "gap" => KernelReadout.GlobalAveragePool,
            _ => throw new ArgumentException($"--readout: expected flatten or gap, got '{Readout}'"),
        },
        RandomFeatures is { } networks ? new RandomFeatureSpec(networks, RandomFeatureWidth ?? RandomFeatureConvKernel.DefaultWidth, RandomFeatureSeed) : null);

    public override ValidationResult Validate()
    {
        if (string.IsNullOrWhiteSpace(Data)) return ValidationResult.Error("--data is required");
        if (!Directory.Exists(Data)) return ValidationResult.Error($"--data: folder '{Data}' does not exist");
        if (Threads is < 1) return ValidationResult.Error("--threads must be positive");
        if (MaxTrain is < 1) return ValidationResult.Error("--max-train must be positive");
        try { ComputeDevice.Parse(Device, "--device"); }
        catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
        try { KernelSpec().Validate(); }
        catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
        return ValidationResult.Success();
    }
}
