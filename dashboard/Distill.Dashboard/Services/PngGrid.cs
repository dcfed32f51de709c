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
    public const int Padding = 2;

    /// <summary>The on-screen magnification for images of this height (at least 56 px tall).</summary>
    public static int ScaleFor(int height) => Math.Max(1, (int)Math.Ceiling(56.0 / Math.Max(1, height)));

    /// <summary>The height of one class row in pixels, padding included.</summary>
    public static int RowHeight(int height) => height * ScaleFor(height) + Padding;

    public static int ClassCount(SnapshotInfo snapshot) =>
        Math.Max(snapshot.ClassNames.Count, snapshot.Classes.Count == 0 ? 0 : snapshot.Classes.Max() + 1);

    public static byte[] Render(SnapshotInfo snapshot)
    {
        var images = snapshot.Images ?? throw new ArgumentException("the snapshot carries no images (basic view)", nameof(snapshot));
        if (images.Shape.Length != 4) throw new ArgumentException($"images must be N x C x H x W, got {images.Shape.Length} dimensions");
        int count = images.Shape[0], channels = images.Shape[1], height = images.Shape[2], width = images.Shape[3];
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
        var pixels = images.Data;
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
