using System.IO.Compression;

namespace Distill.Core.Data;

/// <summary>File access shared by the binary readers: gzip-transparent reads and byte-to-unit scaling.</summary>
internal static class DatasetFile
{
    // A table rather than a multiply so every reader yields exactly b / 255f.
    private static readonly float[] UnitScale = Enumerable.Range(0, 256).Select(b => b / 255f).ToArray();

    private const int ParallelChunk = 1 << 20;

    /// <summary>
    /// The file's bytes, decompressed when it starts with the gzip magic (whatever its
    /// extension), never more than <paramref name="maxBytes"/>: a longer file, or a gzip
    /// stream that inflates past it, fails with <paramref name="tooLong"/> as soon as it
    /// is seen, having read at most the cap. The callback gets the length seen: the file's
    /// exact length when it is not compressed, else a lower bound.
    /// </summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, Func<long, Exception> tooLong)
    {
        using var file = File.OpenRead(path);
        var magic = new byte[2];
        var gzip = file.Read(magic) == 2 && IsGzip(magic);
        file.Position = 0;
        if (!gzip && file.Length > maxBytes) throw tooLong(file.Length);
        using var source = gzip ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
        var cap = Math.Min(maxBytes, Array.MaxLength);
        using var output = new MemoryStream(gzip ? (int)Math.Min(cap, 1 << 20) : (int)file.Length);
        var buffer = new byte[1 << 16];
        try
        {
            int read;
            while ((read = source.Read(buffer)) > 0)
            {
                if (output.Length + read > cap) throw tooLong(output.Length + read);
                output.Write(buffer, 0, read);
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
        {
            throw new DatasetFormatException(path, $"is not a valid gzip stream ({ex.Message})", ex);
        }
        return output.Length == output.Capacity ? output.GetBuffer() : output.ToArray();
    }

    /// <summary>The whole file, within the limits of a .NET array.</summary>
    public static byte[] ReadAllBytes(string path) =>
        ReadAllBytes(path, Array.MaxLength, length => new DatasetFormatException(path, $"is larger than {Array.MaxLength} bytes ({length} read)"));

    /// <summary>The first <paramref name="count"/> bytes (fewer if the file is shorter), decompressed when gzipped.</summary>
    public static byte[] ReadPrefix(string path, int count)
    {
        using var file = File.OpenRead(path);
        var magic = new byte[2];
        var gzip = file.Read(magic) == 2 && IsGzip(magic);
        file.Position = 0;
        using var source = gzip ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
        var prefix = new byte[count];
        try
        {
            int total = 0, read;
            while (total < count && (read = source.Read(prefix, total, count - total)) > 0) total += read;
            return total == count ? prefix : prefix[..total];
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
        {
            throw new DatasetFormatException(path, $"is not a valid gzip stream ({ex.Message})", ex);
        }
    }

    public static bool IsGzipFile(string path)
    {
        using var file = File.OpenRead(path);
        var magic = new byte[2];
        return file.Read(magic) == 2 && IsGzip(magic);
    }

    public static bool IsGzip(ReadOnlySpan<byte> bytes) => bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;

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
