using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Distill.Core.Runtime;

/// <summary>Process-wide settings for the tensor engine, applied once at start-up by each host.</summary>
public static partial class TorchRuntime
{
    private const int MallocTrimThreshold = -1;  // glibc M_TRIM_THRESHOLD
    private const int MallocMmapThreshold = -3;  // glibc M_MMAP_THRESHOLD

    /// <summary>
    /// Sets the intra-op thread count (null: all cores) and keeps glibc from returning
    /// tensor-sized blocks to the kernel after every step. By default each 5000 x 784
    /// float64 target batch is a fresh mmap whose page faults cost as much as the kernel
    /// arithmetic itself; raising the thresholds lets the allocator reuse the memory.
    /// </summary>
    public static void Configure(int? threads = null)
    {
        LimitOneDnnOnAmd();
        if (threads is { } n)
        {
            if (n < 1) throw new ArgumentException($"threads: must be positive, got {n}", nameof(threads));
            set_num_threads(n);
        }
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            mallopt(MallocMmapThreshold, 32 << 20);   // glibc's largest allowed value on 64-bit
            mallopt(MallocTrimThreshold, 1 << 30);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc (e.g. musl): keep its defaults.
        }
    }

    /// <summary>
    /// On a two-core AMD EPYC machine with AVX-512 (2026-12-02), oneDNN's AVX-512 float32
    /// convolutions turned small networks' training losses to NaN (one to five of ten transfer tests
    /// in most runs); its AVX2 ones never did. oneDNN reads DNNL_MAX_CPU_ISA once, at its first
    /// convolution, so hosts call this in <see cref="Configure"/> and the types that make float32
    /// convolutions from their static constructors; a value the user set wins. (Not a module
    /// initializer: that would also run in the fuzzing harness, before its instrumentation is ready.)
    /// test.sh sets the variable for the test processes, whose tests convolve in many places.
    /// </summary>
    internal static void LimitOneDnnOnAmd()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref _oneDnnLimited, 1) == 1) return;
        try
        {
            if (File.ReadLines("/proc/cpuinfo").Any(line => line.StartsWith("vendor_id", StringComparison.Ordinal) && line.Contains("AuthenticAMD", StringComparison.Ordinal)))
                setenv("DNNL_MAX_CPU_ISA", "AVX2", overwrite: 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            // No /proc or not glibc: leave oneDNN as it is.
        }
    }

    private static int _oneDnnLimited;

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    private static readonly object DeviceLock = new();
    private static ComputeDevice _device = ComputeDevice.Cpu;
    private static TorchSharp.torch.Device _torchDevice = CPU;

    /// <summary>
    /// The device that computes, as resolved by <see cref="UseDevice"/> (the CPU until a host
    /// sets one). Datasets, Gram blocks, solves and gradients are created on it; values cross
    /// to the host only where they leave the engine (messages, files, metrics).
    /// </summary>
    public static ComputeDevice Device
    {
        get { lock (DeviceLock) return _device; }
    }

    /// <summary>The TorchSharp device that new tensors are placed on.</summary>
    public static TorchSharp.torch.Device TorchDevice
    {
        get { lock (DeviceLock) return _torchDevice; }
    }

    /// <summary>The name of the device that really computes: "cpu" or "cuda:N".</summary>
    public static string DeviceName => Device.Name;

    /// <summary>
    /// Parses and resolves a device setting (auto, cpu, cuda, cuda:N) once, at start-up, and
    /// makes it the process's compute device. Errors name <paramref name="settingName"/>.
    /// </summary>
    public static ComputeDevice UseDevice(string? setting, string settingName = "device")
    {
        var parsed = ComputeDevice.Parse(setting, settingName);
        // Ask libtorch about CUDA only when the setting could use it: the CPU stays cheap.
        var cudaAvailable = !parsed.Equals(ComputeDevice.Cpu) && cuda.is_available();
        var resolved = parsed.Resolve(cudaAvailable, cudaAvailable ? cuda.device_count() : 0, settingName);
        var torchDevice = resolved.IsCuda ? new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, resolved.Index) : CPU;
        lock (DeviceLock)
        {
            _device = resolved;
            _torchDevice = torchDevice;
        }
        return resolved;
    }

    /// <summary>
    /// Moves a tensor to the compute device: returns <paramref name="t"/> itself when it is
    /// already there, else a copy on the device, disposing <paramref name="t"/>.
    /// </summary>
    public static Tensor MoveToComputeDevice(this Tensor t)
    {
        var device = TorchDevice;
        if (t.device_type == device.type && (device.type != TorchSharp.DeviceType.CUDA || t.device_index == device.index)) return t;
        using (t) return t.to(device);
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int parameter, int value);
}
