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
        int imageWidth = columns * cellWidth + Padding, imageHeight = classCount * cellHeight + Padding;
        // Composed in a plain RGBA buffer: SetPixel per pixel goes through a canvas draw each time.
        var rgba = new byte[imageWidth * imageHeight * 4];
        Array.Fill(rgba, (byte)255);
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
                    int at = ((Padding + row * cellHeight + y) * imageWidth + Padding + column * cellWidth + x) * 4;
                    for (int channel = 0; channel < 3; channel++)
                        rgba[at + channel] = ToByte(pixels[channels == 1 ? p : p + channel * plane]);
                }
            }
        }

        using var image = SKImage.FromPixelCopy(new SKImageInfo(imageWidth, imageHeight, SKColorType.Rgba8888, SKAlphaType.Opaque), rgba);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.AsSpan());
    }

    private static byte ToByte(float value) => (byte)Math.Round(Math.Clamp(float.IsFinite(value) ? value : 0f, 0f, 1f) * 255f);
}
