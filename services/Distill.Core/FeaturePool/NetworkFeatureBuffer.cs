using Distill.Core.Errors;
using Distill.Core.Kernels;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// phi_m(x) of a fixed set of images under every network of a random-feature kernel, computed
/// once without gradients and stored as one [networks, n, F] tensor whose size is bounded.
/// A pooled KIP step reads the rows of its target batch for the networks it sampled.
/// </summary>
public sealed class NetworkFeatureBuffer : IDisposable
{
    private readonly Tensor _features;

    private NetworkFeatureBuffer(Tensor features, Tensor targets)
    {
        _features = features;
        Targets = targets;
    }

    /// <summary>Stored features, [networks, n, F].</summary>
    public Tensor Features => _features;
    /// <summary>The images' regression targets (centred one-hot), [n, C] float64.</summary>
    public Tensor Targets { get; }
    public int Networks => (int)_features.shape[0];
    public long Count => _features.shape[1];
    public long FeatureCount => _features.shape[2];
    public long Bytes => _features.NumberOfElements * _features.ElementSize;

    /// <summary>The bytes a buffer of this shape takes, to check before computing it.</summary>
    public static long SizeOf(int networks, long images, long featureCount, ScalarType type) =>
        networks * images * featureCount * (type == ScalarType.Float64 ? 8L : 4L);

    /// <summary>
    /// Features of <paramref name="images"/> (n x d rows) under networks first..first+networks-1 of
    /// <paramref name="source"/>, in <paramref name="type"/>; refuses a buffer over <paramref name="maxBytes"/>.
    /// <paramref name="progress"/> hears (networks done, networks in all).
    /// </summary>
    public static NetworkFeatureBuffer Compute(RandomFeatureConvKernel source, int networks, Tensor images, Tensor targets,
        ScalarType type, long maxBytes, Action<int, int>? progress = null, string field = "feature_buffer_mb", int first = 0)
    {
        long bytes = SizeOf(networks, images.shape[0], source.FeatureCount, type);
        if (bytes > maxBytes)
            throw new LimitExceededException("FEATURE_BUFFER_TOO_LARGE", field,
                $"{networks} networks x {images.shape[0]} images x {source.FeatureCount} features need {bytes / (1 << 20)} MiB, over the bound of {maxBytes / (1 << 20)} MiB");
        using var noGrad = no_grad();
        var features = empty([networks, images.shape[0], source.FeatureCount], dtype: type, device: images.device);
        try
        {
            using (var scope = NewDisposeScope())
            {
                var x = images.to_type(type);
                for (int m = 0; m < networks; m++)
                {
                    using var networkScope = NewDisposeScope();
                    var network = source.DrawNetwork(first + m, type, images.device);
                    features[m].copy_(source.NetworkFeatures(network, x));
                    progress?.Invoke(m + 1, networks);
                }
            }
            return new NetworkFeatureBuffer(features, targets.clone());
        }
        catch
        {
            features.Dispose();
            throw;
        }
    }

    /// <summary>Rows <paramref name="rows"/> of network <paramref name="network"/>'s features, [rows, F].</summary>
    public Tensor Rows(int network, Tensor rows) => _features[network].index_select(0, rows);

    public void Dispose()
    {
        _features.Dispose();
        Targets.Dispose();
    }
}
