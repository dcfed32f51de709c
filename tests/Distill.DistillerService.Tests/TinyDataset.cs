using System.Buffers.Binary;
using System.IO.Compression;

namespace Distill.DistillerService.Tests;

/// <summary>
/// A small MNIST-format dataset (gzipped IDX, 10 classes of 8x8 templates plus noise)
/// written into a data root, so runs read real files through the real readers.
/// </summary>
internal static class TinyDataset
{
    public const string Name = "tiny";

    public static string Write(string root, int trainPerClass = 30, int testPerClass = 10, int seed = 1)
    {
        var directory = Path.Combine(root, Name);
        Directory.CreateDirectory(directory);
        var random = new Random(seed);
        var templates = Enumerable.Range(0, 10).Select(_ => Enumerable.Range(0, 64).Select(_ => random.Next(256)).ToArray()).ToArray();
        foreach (var (prefix, perClass) in new[] { ("train", trainPerClass), ("t10k", testPerClass) })
        {
            int n = perClass * 10;
            var pixels = new byte[n * 64];
            var labels = new byte[n];
            for (int i = 0; i < n; i++)
            {
                labels[i] = (byte)(i % 10);
                for (int j = 0; j < 64; j++)
                    pixels[i * 64 + j] = (byte)Math.Clamp(templates[i % 10][j] + random.Next(-90, 90), 0, 255);
            }
            Write(Path.Combine(directory, $"{prefix}-images-idx3-ubyte.gz"), Header(0x803, n, 8, 8), pixels);
            Write(Path.Combine(directory, $"{prefix}-labels-idx1-ubyte.gz"), Header(0x801, n), labels);
        }
        return directory;
    }

    private static byte[] Header(int magic, params int[] dimensions)
    {
        var header = new byte[4 * (1 + dimensions.Length)];
        BinaryPrimitives.WriteInt32BigEndian(header, magic);
        for (int i = 0; i < dimensions.Length; i++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 * (i + 1)), dimensions[i]);
        return header;
    }

    private static void Write(string path, byte[] header, byte[] body)
    {
        using var file = File.Create(path);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        gzip.Write(header);
        gzip.Write(body);
    }
}
