using System.ComponentModel;
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

    [CommandOption("--max-train <N>"), Description("Use only the first N training images (quick trials).")]
    public int? MaxTrain { get; init; }

    [CommandOption("--threads <N>"), Description("Intra-op threads for TorchSharp (default: all cores).")]
    public int? Threads { get; init; }

    [CommandOption("--device <DEVICE>"), Description("Where the engine computes: auto (CUDA when available), cpu, cuda or cuda:N."), DefaultValue("auto")]
    public string Device { get; init; } = "auto";

    [CommandOption("--block-rows <N>"), Description("Rows per Gram block; bounds memory."), DefaultValue(4096)]
    public int BlockRows { get; init; } = 4096;

    public KernelSpec KernelSpec() => new(
        Kernel.ToLowerInvariant() switch
        {
            "ntk" => KernelKind.Ntk,
            "nngp" => KernelKind.Nngp,
            _ => throw new ArgumentException($"--kernel: expected ntk or nngp, got '{Kernel}'"),
        },
        Depth, WStd, BStd);

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
