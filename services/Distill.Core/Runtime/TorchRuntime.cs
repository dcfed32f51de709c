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
    /// The device that computes. Every tensor of this engine lives on the CPU; a CUDA
    /// device appears here only once datasets, Gram blocks and solves are placed on it.
    /// </summary>
    public static string DeviceName => "cpu";

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int parameter, int value);
}
