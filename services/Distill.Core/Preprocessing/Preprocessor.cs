using Distill.Core.Data;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Preprocessing;

/// <summary>
/// A preprocessing pipeline fitted on a train split. It maps NCHW pixels in [0, 1] to
/// flattened float64 feature rows and back, identically for train, test and support images.
/// ZCA follows RFAD/FRePo: uncentred X^T X / n of the standardised train images, ridge
/// 0.1 tr / d, W = U (S + ridge)^-1/2 U^T; no per-image layer norm, so it stays invertible
/// and distilled images can be shown in pixel space.
/// </summary>
public sealed class Preprocessor : IDisposable
{
    private readonly Tensor _mean;     // [C]
    private readonly Tensor _std;      // [C]
    private readonly Tensor? _whiten;  // [d, d]
    private readonly Tensor? _unwhiten;

    private Preprocessor(PreprocessingSpec spec, int channels, int height, int width, Tensor mean, Tensor std, Tensor? whiten, Tensor? unwhiten)
    {
        Spec = spec;
        Channels = channels;
        Height = height;
        Width = width;
        _mean = mean;
        _std = std;
        _whiten = whiten;
        _unwhiten = unwhiten;
    }

    public PreprocessingSpec Spec { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int FeatureCount => Channels * Height * Width;
    public double[] ChannelMean => _mean.cpu().data<double>().ToArray();
    public double[] ChannelStd => _std.cpu().data<double>().ToArray();

    public static Preprocessor Fit(LabeledImages train, PreprocessingSpec spec)
    {
        spec.Validate();
        using var scope = NewDisposeScope();
        var pixels = ToTensor(train);
        Tensor mean, std;
        if (spec.Standardize)
        {
            mean = pixels.mean([0L, 2L, 3L]);
            std = pixels.std([0L, 2L, 3L], unbiased: false);
            // A constant channel would divide by zero; leave it unscaled.
            using Scalar floor = 1e-12;
            std = where(std.gt(floor), std, ones_like(std));
        }
        else
        {
            mean = zeros(train.Channels, dtype: ScalarType.Float64, device: pixels.device);
            std = ones(train.Channels, dtype: ScalarType.Float64, device: pixels.device);
        }

        Tensor? whiten = null, unwhiten = null;
        if (spec.Zca)
        {
            var x = Standardize(pixels, mean, std).reshape(train.Count, -1);
            var d = x.shape[1];
            using Scalar count = train.Count, zero = 0;
            var covariance = x.t().matmul(x).div_(count);
            using Scalar ridge = spec.ZcaRegularization * covariance.trace().item<double>() / d;
            var (eigenvalues, eigenvectors) = linalg.eigh(covariance);
            var shifted = eigenvalues.clamp_min(zero).add_(ridge, One);
            whiten = eigenvectors.mul(shifted.rsqrt().unsqueeze(0)).matmul(eigenvectors.t()).MoveToOuterDisposeScope();
            unwhiten = eigenvectors.mul(shifted.sqrt().unsqueeze(0)).matmul(eigenvectors.t()).MoveToOuterDisposeScope();
        }

        return new Preprocessor(spec, train.Channels, train.Height, train.Width,
            mean.MoveToOuterDisposeScope(), std.MoveToOuterDisposeScope(), whiten, unwhiten);
    }

    /// <summary>Pixels (NCHW in [0, 1]) to feature rows, n x d float64.</summary>
    public Tensor Apply(LabeledImages images)
    {
        CheckShape(images.Channels, images.Height, images.Width);
        using var scope = NewDisposeScope();
        return Apply(ToTensor(images)).MoveToOuterDisposeScope();
    }

    /// <summary>NCHW float64 pixels to feature rows.</summary>
    public Tensor Apply(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = Standardize(pixels.to_type(ScalarType.Float64), _mean, _std).reshape(pixels.shape[0], -1);
        if (_whiten is not null) x = x.matmul(_whiten);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Feature rows back to NCHW pixels (unclipped).</summary>
    public Tensor Invert(Tensor features)
    {
        using var scope = NewDisposeScope();
        var x = features.to_type(ScalarType.Float64);
        if (_unwhiten is not null) x = x.matmul(_unwhiten);
        var images = x.reshape(features.shape[0], Channels, Height, Width);
        return images.mul(_std.view(1, -1, 1, 1)).add(_mean.view(1, -1, 1, 1), One).MoveToOuterDisposeScope();
    }

    /// <summary>Settings and statistics, for the metadata of an output file.</summary>
    public IReadOnlyDictionary<string, string> Describe() => new Dictionary<string, string>
    {
        ["preprocessing.standardize"] = Spec.Standardize.ToString().ToLowerInvariant(),
        ["preprocessing.zca"] = Spec.Zca.ToString().ToLowerInvariant(),
        ["preprocessing.zca_regularization"] = Spec.ZcaRegularization.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        ["preprocessing.channel_mean"] = string.Join(",", ChannelMean.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
        ["preprocessing.channel_std"] = string.Join(",", ChannelStd.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))),
    };

    private void CheckShape(int channels, int height, int width)
    {
        if (channels != Channels || height != Height || width != Width)
            throw new ArgumentException($"images are {channels}x{height}x{width}, the preprocessor was fitted on {Channels}x{Height}x{Width}");
    }

    private static Tensor Standardize(Tensor pixels, Tensor mean, Tensor std) =>
        pixels.sub(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1));

    private static Tensor ToTensor(LabeledImages images) =>
        tensor(images.Pixels, [images.Count, images.Channels, images.Height, images.Width], device: Runtime.TorchRuntime.TorchDevice).to_type(ScalarType.Float64);

    public void Dispose()
    {
        _mean.Dispose();
        _std.Dispose();
        _whiten?.Dispose();
        _unwhiten?.Dispose();
    }
}
