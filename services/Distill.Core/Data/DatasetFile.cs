using System.Buffers.Binary;
using System.IO.Compression;

namespace Distill.Core.Data;

/// <summary>File access shared by the binary readers: gzip-transparent reads and byte-to-unit scaling.</summary>
internal static class DatasetFile
{
    // A table rather than a multiply so every reader yields exactly b / 255f.
    private static readonly float[] UnitScale = Enumerable.Range(0, 256).Select(b => b / 255f).ToArray();

    private const int ParallelChunk = 1 << 20;

    /// <summary>The file's bytes, decompressed when it starts with the gzip magic (whatever its extension).</summary>
    public static byte[] ReadAllBytes(string path)
    {
        byte[] raw = File.ReadAllBytes(path);
        return IsGzip(raw) ? Gunzip(path, raw) : raw;
    }

    public static bool IsGzip(ReadOnlySpan<byte> bytes) => bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;

    private static byte[] Gunzip(string path, byte[] compressed)
    {
        // The gzip trailer stores the uncompressed size mod 2^32; used only as a capacity hint,
        // capped by deflate's maximum ratio so a corrupt trailer cannot force a huge allocation.
        long hint = compressed.Length >= 18 ? BinaryPrimitives.ReadUInt32LittleEndian(compressed.AsSpan(compressed.Length - 4)) : 0;
        hint = Math.Min(hint, Math.Min((long)compressed.Length * 1032, Array.MaxLength));
        using var output = new MemoryStream((int)hint);
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed, writable: false), CompressionMode.Decompress);
            gzip.CopyTo(output);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
        {
            throw new DatasetFormatException(path, $"is not a valid gzip stream ({ex.Message})", ex);
        }
        return output.Length == output.Capacity ? output.GetBuffer() : output.ToArray();
    }

    /// <summary><paramref name="baseName"/> in <paramref name="directory"/>, or its .gz variant, or null.</summary>
    public static string? FindPlainOrGzip(string directory, string baseName)
    {
        string plain = Path.Combine(directory, baseName);
        if (File.Exists(plain)) return plain;
        string gzipped = plain + ".gz";
        return File.Exists(gzipped) ? gzipped : null;
    }

    /// <summary>Writes source[i] / 255 into destination, in parallel chunks for large inputs.</summary>
    public static void ToUnitInterval(byte[] source, int sourceOffset, float[] destination, int destinationOffset, int count)
    {
        if (count <= ParallelChunk)
        {
            ToUnitInterval(source.AsSpan(sourceOffset, count), destination.AsSpan(destinationOffset, count));
            return;
        }
        int chunks = (count + ParallelChunk - 1) / ParallelChunk;
        Parallel.For(0, chunks, chunk =>
        {
            int start = chunk * ParallelChunk;
            int length = Math.Min(ParallelChunk, count - start);
            ToUnitInterval(source.AsSpan(sourceOffset + start, length), destination.AsSpan(destinationOffset + start, length));
        });
    }

    public static void ToUnitInterval(ReadOnlySpan<byte> source, Span<float> destination)
    {
        var scale = UnitScale;
        for (int i = 0; i < source.Length; i++)
            destination[i] = scale[source[i]];
    }

    public static float ToUnit(byte value) => UnitScale[value];

    public static void RequireDirectory(string directory, string what)
    {
        if (Directory.Exists(directory)) return;
        throw new DirectoryNotFoundException(File.Exists(directory)
            ? $"{what} path is a file, expected a directory: {directory}"
            : $"{what} directory not found: {directory}");
    }

    /// <summary>The last path component, so "data/mnist/" is named "mnist".</summary>
    public static string DirectoryName(string directory)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        string name = Path.GetFileName(full);
        return name.Length > 0 ? name : full;
    }

    public static IReadOnlyList<string> NumberNames(int count) =>
        Enumerable.Range(0, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}
