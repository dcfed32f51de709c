using System.ComponentModel.DataAnnotations;

namespace Distill.KernelService.Configuration;

/// <summary>Settings of the "KernelService" configuration section (appsettings, environment KernelService__X, or --KernelService:X).</summary>
public sealed class KernelServiceOptions
{
    public const string Section = "KernelService";

    /// <summary>Folder that RegisterDataset paths are resolved under; empty disables path registration.</summary>
    public string? DataRoot { get; set; }

    /// <summary>Largest number of kernel entries (n1 x n2) or inline tensor elements one request may involve.</summary>
    [Range(1, long.MaxValue)]
    public long MaxElementsPerRequest { get; set; } = 200_000_000;

    /// <summary>
    /// Memory budget of one convolutional kernel computation: the largest per-layer tensor of one
    /// chunk of image pairs (float64 elements; the default, 4M, is 32 MiB, and autograd keeps a few
    /// tens of such tensors). A bigger request is computed in more chunks, not with more memory.
    /// </summary>
    [Range(1, long.MaxValue)]
    public long MaxChunkElements { get; set; } = Core.Kernels.ConvolutionalKernel.DefaultMaxChunkElements;

    /// <summary>Compute requests served at once; more are refused with RESOURCE_EXHAUSTED.</summary>
    [Range(1, int.MaxValue)]
    public int MaxConcurrentRequests { get; set; } = 4;

    /// <summary>Total float64 elements all registered datasets may hold.</summary>
    [Range(1, long.MaxValue)]
    public long MaxDatasetElements { get; set; } = 1_000_000_000;

    /// <summary>Total bytes all held feature pools (stored target features) may take.</summary>
    [Range(1, long.MaxValue)]
    public long MaxFeaturePoolBytes { get; set; } = 8L << 30;

    /// <summary>
    /// Where datasets, Gram blocks, solves and gradients live: auto (CUDA device 0 when
    /// CUDA is available, else the CPU), cpu, cuda or cuda:N. GetServerInfo reports the result.
    /// </summary>
    public string Device { get; set; } = "auto";

    /// <summary>TorchSharp intra-op threads; null uses every core.</summary>
    [Range(1, 4096)]
    public int? Threads { get; set; }
}
