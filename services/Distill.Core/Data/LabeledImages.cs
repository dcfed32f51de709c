namespace Distill.Core.Data;

/// <summary>
/// A labelled image split held in memory: pixels in [0, 1] as float32, laid out NCHW.
/// Plain arrays rather than tensors so readers stay free of TorchSharp and a split
/// can be sliced, sampled and serialised without native memory.
/// </summary>
public sealed record LabeledImages
{
    public LabeledImages(float[] pixels, int[] labels, int channels, int height, int width, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        if (channels <= 0 || height <= 0 || width <= 0)
            throw new ArgumentException($"image shape must be positive, got {channels}x{height}x{width}");
        if (pixels.LongLength != (long)labels.Length * channels * height * width)
            throw new ArgumentException($"pixels has {pixels.LongLength} values, expected {labels.Length}x{channels}x{height}x{width}");
        foreach (var label in labels)
            if (label < 0 || label >= classNames.Count)
                throw new ArgumentException($"label {label} is outside 0..{classNames.Count - 1}");
        Pixels = pixels;
        Labels = labels;
        Channels = channels;
        Height = height;
        Width = width;
        ClassNames = classNames;
    }

    public float[] Pixels { get; }
    public int[] Labels { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public IReadOnlyList<string> ClassNames { get; }

    public int Count => Labels.Length;
    public int ClassCount => ClassNames.Count;
    public int FeatureCount => Channels * Height * Width;

    /// <summary>The images at the given rows, in that order.</summary>
    public LabeledImages Rows(IReadOnlyList<long> rows)
    {
        var pixels = new float[(long)rows.Count * FeatureCount];
        var labels = new int[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            Array.Copy(Pixels, rows[i] * FeatureCount, pixels, (long)i * FeatureCount, FeatureCount);
            labels[i] = Labels[rows[i]];
        }
        return new LabeledImages(pixels, labels, Channels, Height, Width, ClassNames);
    }
}

/// <summary>A dataset's train and test splits, with the same shape and classes.</summary>
public sealed record ImageDataset(string Name, LabeledImages Train, LabeledImages Test);
