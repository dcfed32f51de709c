namespace Distill.Core.Runtime;

/// <summary>
/// The device setting of every host (KernelService:Device, Distiller:Device, the CLI's
/// --device): <c>auto</c> (CUDA device 0 when CUDA is available, else the CPU), <c>cpu</c>,
/// <c>cuda</c> (device 0) or <c>cuda:N</c>. <see cref="Parse"/> checks the spelling;
/// <see cref="Resolve"/> checks it against the devices this process can see.
/// </summary>
public sealed record ComputeDevice
{
    public const string Auto = "auto";

    private ComputeDevice(string setting, bool isCuda, int index)
    {
        Setting = setting;
        IsCuda = isCuda;
        Index = index;
    }

    /// <summary>The setting as written (lower case), e.g. "auto" or "cuda:1".</summary>
    public string Setting { get; }

    public bool IsAuto => Setting == Auto;
    public bool IsCuda { get; }

    /// <summary>The CUDA device index (0 for "cuda"); 0 for the CPU.</summary>
    public int Index { get; }

    /// <summary>The resolved device's name as GetServerInfo reports it: "cpu" or "cuda:N".</summary>
    public string Name => IsCuda ? $"cuda:{Index}" : IsAuto ? Auto : "cpu";

    public static ComputeDevice Cpu { get; } = new("cpu", false, 0);

    /// <summary>Parses "auto", "cpu", "cuda" or "cuda:N"; empty means auto.</summary>
    /// <exception cref="ArgumentException">names <paramref name="settingName"/> and the accepted values</exception>
    public static ComputeDevice Parse(string? setting, string settingName = "device")
    {
        var s = (setting ?? "").Trim().ToLowerInvariant();
        if (s.Length == 0 || s == Auto) return new ComputeDevice(Auto, false, 0);
        if (s == "cpu") return Cpu;
        if (s == "cuda") return new ComputeDevice("cuda", true, 0);
        if (s.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(s.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index))
            return new ComputeDevice(s, true, index);
        throw new ArgumentException($"{settingName}: '{setting}' is not a device; use auto, cpu, cuda or cuda:N");
    }

    /// <summary>
    /// The device that will compute: auto becomes cuda:0 when CUDA is available and the CPU
    /// otherwise; a CUDA device that this process cannot use is an error naming the setting.
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA asked for but unavailable, or the index is out of range</exception>
    public ComputeDevice Resolve(bool cudaAvailable, int cudaDeviceCount, string settingName = "device")
    {
        if (IsAuto) return cudaAvailable && cudaDeviceCount > 0 ? new ComputeDevice("cuda:0", true, 0) : Cpu;
        if (!IsCuda) return this;
        if (!cudaAvailable)
            throw new InvalidOperationException(
                $"{settingName}={Setting}: CUDA is not available to this process (a TorchSharp-cpu build, or no visible NVIDIA GPU and driver); " +
                $"set {settingName} to cpu or auto, or run the CUDA build (-p:TorchBackend=cuda) on a GPU host");
        if (Index >= cudaDeviceCount)
            throw new InvalidOperationException(
                $"{settingName}={Setting}: this process sees {cudaDeviceCount} CUDA device(s), numbered 0 to {cudaDeviceCount - 1}");
        return new ComputeDevice($"cuda:{Index}", true, Index);
    }

    public override string ToString() => Name;
}
