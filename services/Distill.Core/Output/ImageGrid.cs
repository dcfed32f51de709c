using SkiaSharp;

namespace Distill.Core.Output;

/// <summary>
/// A PNG with one row per class and one column per image of that class, each image
/// clipped to [0, 1] and scaled up so that 28x28 digits stay legible.
/// </summary>
public static class ImageGrid
{
    private const int Padding = 2;

    /// <param name="pixels">NCHW pixels in [0, 1] (values outside are clipped).</param>
    /// <param name="labels">the class of each image, which picks its row.</param>
    public static void WritePng(string path, float[] pixels, int[] labels, int channels, int height, int width, int classCount, int scale = 2)
    {
        if (channels != 1 && channels != 3)
            throw new ArgumentException($"images must have 1 or 3 channels to be drawn, got {channels}");
        var rows = Enumerable.Range(0, classCount).Select(c => new List<int>()).ToArray();
        for (int i = 0; i < labels.Length; i++) rows[labels[i]].Add(i);
        int columns = Math.Max(1, rows.Max(r => r.Count));
        int cellWidth = width * scale + Padding, cellHeight = height * scale + Padding;

        using var bitmap = new SKBitmap(columns * cellWidth + Padding, classCount * cellHeight + Padding, SKColorType.Rgba8888, SKAlphaType.Opaque);
        bitmap.Erase(SKColors.White);
        int plane = height * width;
        for (int row = 0; row < classCount; row++)
        {
            for (int column = 0; column < rows[row].Count; column++)
            {
                int offset = rows[row][column] * channels * plane;
                for (int y = 0; y < height * scale; y++)
                for (int x = 0; x < width * scale; x++)
                {
                    int p = offset + (y / scale) * width + x / scale;
                    byte r = ToByte(pixels[p]);
                    var color = channels == 1 ? new SKColor(r, r, r) : new SKColor(r, ToByte(pixels[p + plane]), ToByte(pixels[p + 2 * plane]));
                    bitmap.SetPixel(Padding + column * cellWidth + x, Padding + row * cellHeight + y, color);
                }
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.AsSpan());
    }

    private static byte ToByte(float value) => (byte)Math.Round(Math.Clamp(float.IsFinite(value) ? value : 0f, 0f, 1f) * 255f);
}
