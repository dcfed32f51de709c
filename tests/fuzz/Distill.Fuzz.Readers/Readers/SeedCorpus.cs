using System.Buffers.Binary;
using System.IO.Compression;
using Distill.Core.Data;
using Distill.Core.Output;
using SkiaSharp;

namespace Distill.Fuzz.Readers;

/// <summary>
/// Tiny valid inputs per reader, the starting points AFL mutates: written by the engine's own
/// writers where it has them (safetensors), else byte by byte after the format (IDX, CIFAR)
/// or by the image library the reader decodes with (SkiaSharp). Deterministic, so the
/// committed corpus can be regenerated unchanged.
/// </summary>
public static class SeedCorpus
{
    public static void Write(string corpusRoot)
    {
        foreach (var (reader, name, bytes) in Seeds())
        {
            var folder = Path.Combine(corpusRoot, reader);
            Directory.CreateDirectory(folder);
            File.WriteAllBytes(Path.Combine(folder, name), bytes);
        }
    }

    private static IEnumerable<(string Reader, string Name, byte[] Bytes)> Seeds()
    {
        byte[] images = Idx(IdxReader.ImageMagic, [3, 4, 4], Pattern(3 * 4 * 4));
        byte[] labels = Idx(IdxReader.LabelMagic, [3], [0, 1, 9]);
        yield return ("idx", "plain", InputParts.Join(images, labels));
        yield return ("idx", "gzip", InputParts.Join(Gzip(images), Gzip(labels)));

        byte[] cifar10 = [.. Record([3], 1), .. Record([9], 2)];
        yield return ("cifar10", "two-records", cifar10);
        yield return ("cifar10", "gzip", Gzip(cifar10));
        yield return ("cifar100", "two-records", [.. Record([4, 42], 3), .. Record([19, 99], 4)]);

        yield return ("image-folder", "png-gray-and-png-rgb", InputParts.Join(Image(SKEncodedImageFormat.Png, gray: true), Image(SKEncodedImageFormat.Png, gray: false)));
        yield return ("image-folder", "jpeg-and-png", InputParts.Join(Image(SKEncodedImageFormat.Jpeg, gray: false), Image(SKEncodedImageFormat.Png, gray: true)));

        byte[] checkpoint = Safetensors(new()
        {
            ["support"] = SafetensorsTensor.FromFloats([0.5f, -1f, 2f, 0f], 2, 2),
            ["labels"] = SafetensorsTensor.FromDoubles([1, 0], 2, 1),
            ["classes"] = SafetensorsTensor.FromLongs([3, 7], 2),
        }, new() { ["distill.step"] = "5" });
        yield return ("safetensors", "checkpoint", checkpoint);
        byte[] bytes = Safetensors(new() { ["u8"] = new SafetensorsTensor("U8", [3], [1, 2, 3]) }, null);
        yield return ("safetensors", "bytes", bytes);
        yield return ("npz", "distilled", checkpoint);
        yield return ("npz", "bytes", bytes);
    }

    private static byte[] Idx(uint magic, int[] dimensions, byte[] body)
    {
        var header = new byte[4 + 4 * dimensions.Length];
        BinaryPrimitives.WriteUInt32BigEndian(header, magic);
        for (int i = 0; i < dimensions.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * i), dimensions[i]);
        return [.. header, .. body];
    }

    private static byte[] Record(byte[] labelBytes, int seed) => [.. labelBytes, .. Pattern(CifarBinaryReader.ImageBytes, seed)];

    private static byte[] Pattern(int length, int seed = 0) => Enumerable.Range(0, length).Select(i => (byte)(i * 37 + seed * 11)).ToArray();

    private static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.SmallestSize)) gzip.Write(bytes);
        return output.ToArray();
    }

    private static byte[] Image(SKEncodedImageFormat format, bool gray)
    {
        var info = new SKImageInfo(4, 4, gray ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 60), (byte)(y * 60), (byte)(x * y * 15)));
        using var data = bitmap.Encode(format, 90);
        return data.ToArray();
    }

    private static byte[] Safetensors(Dictionary<string, SafetensorsTensor> tensors, Dictionary<string, string>? metadata)
    {
        var path = Path.Combine(Path.GetTempPath(), $"distill-seed-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafetensorsFile.Write(path, tensors, metadata);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
