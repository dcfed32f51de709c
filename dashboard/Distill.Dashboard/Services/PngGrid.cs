using Distill.Client;
using SkiaSharp;

namespace Distill.Dashboard.Services;

/// <summary>
/// Draws a snapshot's pixel-space images as a PNG with one row per class and one column per
/// image of that class, as the engine's own grid does (values clipped to [0, 1], scaled up so
/// that small images stay legible). The dashboard keeps its own copy so that it needs no engine.
/// </summary>
public static class PngGrid
{
    /// <summary>The view's name in the PNG endpoint's query (?view=...); null for the default (pixels).</summary>
    public static string? QueryName(GridView view) => view switch
    {
        GridView.Preprocessed => "preprocessed",
        GridView.Change => "change",
        _ => null,
    };

    public static GridView ParseView(string? name) => name?.ToLowerInvariant() switch
    {
        "preprocessed" => GridView.Preprocessed,
        "change" => GridView.Change,
        _ => GridView.Pixels,
    };

    /// <summary>
    /// The values to draw, in [0, 1], and their N x C x H x W shape. Pixels: clipped. Preprocessed:
    /// the snapshot's own minimum to maximum. Change: pixels minus <paramref name="start"/>'s, grey at
    /// no change, white and black at the largest absolute change either way.
    /// </summary>
    public static (float[] Values, int[] Shape) Values(SnapshotInfo snapshot, GridView view, SnapshotInfo? start = null)
    {
        switch (view)
        {
            case GridView.Preprocessed:
            {
                var pre = snapshot.PreprocessedImages ?? throw new ArgumentException("the snapshot carries no preprocessed images", nameof(snapshot));
                var finite = pre.Data.Where(float.IsFinite).DefaultIfEmpty(0f).ToArray();
                float min = finite.Min(), range = finite.Max() - min;
                return (pre.Data.Select(v => float.IsFinite(v) ? (range > 0 ? (v - min) / range : 0.5f) : 0f).ToArray(), pre.Shape.ToArray());
            }
            case GridView.Change:
            {
                var images = snapshot.Images ?? throw new ArgumentException("the snapshot carries no images (basic view)", nameof(snapshot));
                var first = start?.Images ?? throw new ArgumentException("the change view needs the first snapshot's images", nameof(start));
                if (first.Data.Length != images.Data.Length) throw new ArgumentException("the first snapshot's images have another shape");
                var change = images.Data.Select((v, i) => float.IsFinite(v) && float.IsFinite(first.Data[i]) ? v - first.Data[i] : 0f).ToArray();
                var largest = change.Length == 0 ? 0f : change.Max(Math.Abs);
                return (change.Select(d => largest > 0 ? 0.5f + 0.5f * d / largest : 0.5f).ToArray(), images.Shape.ToArray());
            }
            default:
            {
                var images = snapshot.Images ?? throw new ArgumentException("the snapshot carries no images (basic view)", nameof(snapshot));
                return (images.Data.ToArray(), images.Shape.ToArray());
            }
        }
    }

    public const int Padding = 2;

    /// <summary>The on-screen magnification for images of this height (at least 56 px tall).</summary>
    public static int ScaleFor(int height) => Math.Max(1, (int)Math.Ceiling(56.0 / Math.Max(1, height)));

    /// <summary>The height of one class row in pixels, padding included.</summary>
    public static int RowHeight(int height) => height * ScaleFor(height) + Padding;

    public static int ClassCount(SnapshotInfo snapshot) =>
        Math.Max(snapshot.ClassNames.Count, snapshot.Classes.Count == 0 ? 0 : snapshot.Classes.Max() + 1);

    public static byte[] Render(SnapshotInfo snapshot, GridView view = GridView.Pixels, SnapshotInfo? start = null)
    {
        var (pixels, shape) = Values(snapshot, view, start);
        if (shape.Length != 4) throw new ArgumentException($"images must be N x C x H x W, got {shape.Length} dimensions");
        int count = shape[0], channels = shape[1], height = shape[2], width = shape[3];
        if (channels != 1 && channels != 3) throw new ArgumentException($"images must have 1 or 3 channels to be drawn, got {channels}");
        int classCount = Math.Max(1, ClassCount(snapshot));
        var rows = Enumerable.Range(0, classCount).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < count; i++)
        {
            int c = i < snapshot.Classes.Count ? snapshot.Classes[i] : 0;
            rows[Math.Clamp(c, 0, classCount - 1)].Add(i);
        }
        int scale = ScaleFor(height);
        int columns = Math.Max(1, rows.Max(r => r.Count));
        int cellWidth = width * scale + Padding, cellHeight = height * scale + Padding;
        int imageWidth = columns * cellWidth + Padding, imageHeight = classCount * cellHeight + Padding;
        var rgba = new byte[imageWidth * imageHeight * 4];
        Array.Fill(rgba, (byte)255);
        int plane = height * width;
        for (int row = 0; row < classCount; row++)
        for (int column = 0; column < rows[row].Count; column++)
        {
            int offset = rows[row][column] * channels * plane;
            for (int y = 0; y < height * scale; y++)
            for (int x = 0; x < width * scale; x++)
            {
                int p = offset + y / scale * width + x / scale;
                int at = ((Padding + row * cellHeight + y) * imageWidth + Padding + column * cellWidth + x) * 4;
                for (int channel = 0; channel < 3; channel++)
                    rgba[at + channel] = ToByte(pixels[channels == 1 ? p : p + channel * plane]);
            }
        }
        using var image = SKImage.FromPixelCopy(new SKImageInfo(imageWidth, imageHeight, SKColorType.Rgba8888, SKAlphaType.Opaque), rgba);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    private static byte ToByte(float value) => (byte)Math.Round(Math.Clamp(float.IsFinite(value) ? value : 0f, 0f, 1f) * 255f);
}

/// <summary>What the snapshot grid shows.</summary>
public enum GridView
{
    /// <summary>The pixel-space images, clipped to [0, 1].</summary>
    Pixels,
    /// <summary>The preprocessed images the kernel sees, scaled by their own minimum and maximum.</summary>
    Preprocessed,
    /// <summary>Pixels minus the first snapshot's, on a diverging grey map.</summary>
    Change,
}
