using System.Buffers.Binary;
using System.IO.Compression;
using SkiaSharp;

namespace Distill.Core.Tests.Data;

/// <summary>Builds small files in the real on-disk formats, so the readers are tested against the formats, not against themselves.</summary>
internal static class DatasetFileWriter
{
    public static byte[] IdxImages(int count, int height, int width, byte[] pixels) =>
        [.. IdxHeader(0x00000803, count, height, width), .. pixels];

    public static byte[] IdxLabels(params byte[] labels) =>
        [.. IdxHeader(0x00000801, labels.Length), .. labels];

    private static byte[] IdxHeader(uint magic, params int[] dims)
    {
        var header = new byte[4 + 4 * dims.Length];
        BinaryPrimitives.WriteUInt32BigEndian(header, magic);
        for (int d = 0; d < dims.Length; d++)
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * d), dims[d]);
        return header;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
            gzip.Write(data);
        return output.ToArray();
    }

    /// <summary>A CIFAR record; <paramref name="pixel"/> maps (channel, index within the 32x32 plane) to a byte.</summary>
    public static byte[] CifarRecord(byte[] labelBytes, Func<int, int, byte> pixel)
    {
        var record = new byte[labelBytes.Length + 3072];
        labelBytes.CopyTo(record, 0);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++)
                record[labelBytes.Length + c * 1024 + p] = pixel(c, p);
        return record;
    }

    public static byte[] Cifar10Record(byte label, Func<int, int, byte> pixel) => CifarRecord([label], pixel);

    public static byte[] Cifar100Record(byte coarse, byte fine, Func<int, int, byte> pixel) => CifarRecord([coarse, fine], pixel);

    /// <summary>An opaque RGB image; <paramref name="color"/> maps (x, y) to a colour.</summary>
    public static byte[] RgbImage(int width, int height, Func<int, int, SKColor> color, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        return Encode(bitmap, format);
    }

    public static byte[] GrayPng(int width, int height, Func<int, int, byte> value)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        var pixels = bitmap.GetPixelSpan();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                pixels[y * bitmap.RowBytes + x] = value(x, y);
        return Encode(bitmap, SKEncodedImageFormat.Png);
    }

    private static byte[] Encode(SKBitmap bitmap, SKEncodedImageFormat format)
    {
        using var data = bitmap.Encode(format, 100);
        return data.ToArray();
    }
}
