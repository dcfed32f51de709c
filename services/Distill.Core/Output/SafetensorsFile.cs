using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Distill.Core.Output;

/// <summary>One named tensor of a safetensors file: dtype code ("F32", "F64", "I64"), shape, little-endian bytes.</summary>
public sealed record SafetensorsTensor(string DType, long[] Shape, byte[] Data)
{
    public static SafetensorsTensor FromFloats(float[] values, params long[] shape) =>
        new("F32", shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    public static SafetensorsTensor FromDoubles(double[] values, params long[] shape) =>
        new("F64", shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    public static SafetensorsTensor FromLongs(long[] values, params long[] shape) =>
        new("I64", shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    public float[] ToFloats() => DType == "F32" ? MemoryMarshal.Cast<byte, float>(Data).ToArray() : throw WrongType("F32");
    public double[] ToDoubles() => DType == "F64" ? MemoryMarshal.Cast<byte, double>(Data).ToArray() : throw WrongType("F64");
    public long[] ToLongs() => DType == "I64" ? MemoryMarshal.Cast<byte, long>(Data).ToArray() : throw WrongType("I64");

    private InvalidDataException WrongType(string wanted) => new($"tensor has dtype {DType}, expected {wanted}");
}

/// <summary>
/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header
/// length, a JSON header naming each tensor's dtype, shape and byte range plus a
/// string-to-string "__metadata__" map, then the raw bytes. Readable from Python with
/// safetensors.numpy.load_file or torch's safetensors loader.
/// Every file written here carries a SHA-256 of its content in the metadata
/// (<see cref="ChecksumKey"/>); reading a file that has one verifies it, so a flipped or
/// lost byte is an error rather than a silently different tensor.
/// </summary>
public static class SafetensorsFile
{
    private const int HeaderAlignment = 8;
    private const long MaxHeaderBytes = 100_000_000;
    private static readonly Dictionary<string, int> ElementSizes = new() { ["F32"] = 4, ["F64"] = 8, ["I64"] = 8, ["U8"] = 1 };

    /// <summary>The metadata key of the content's SHA-256 (lower-case hex).</summary>
    public const string ChecksumKey = "distill.sha256";

    /// <summary>Writes atomically; <paramref name="keepPreviousAs"/>: see <see cref="AtomicFile.Write"/>.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        string? keepPreviousAs = null)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors writing assumes a little-endian machine");
        var header = new JsonObject();
        var described = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { [ChecksumKey] = Checksum(tensors, metadata ?? new Dictionary<string, string>()) };
        header["__metadata__"] = new JsonObject(described.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value))));
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            long expected = tensor.Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(tensor.DType);
            if (expected != tensor.Data.LongLength)
                throw new ArgumentException($"tensor '{name}' has {tensor.Data.LongLength} bytes, its shape needs {expected}");
            header[name] = new JsonObject
            {
                ["dtype"] = tensor.DType,
                ["shape"] = new JsonArray(tensor.Shape.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + tensor.Data.LongLength),
            };
            offset += tensor.Data.LongLength;
        }

        var json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + HeaderAlignment - 1) / HeaderAlignment * HeaderAlignment;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            stream.Write(length);
            stream.Write(json);
            for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
            foreach (var tensor in tensors.Values) stream.Write(tensor.Data);
        }, keepPreviousAs);
    }

    /// <summary>
    /// Reads a safetensors file. A file that is not one (a bad header length, JSON that is
    /// not the expected shape, a dtype not listed, a byte range that does not match its shape
    /// or the file) fails with <see cref="InvalidDataException"/> naming the file.
    /// </summary>
    public static (Dictionary<string, SafetensorsTensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        InvalidDataException Bad(string problem) => new($"{path}: {problem}");
        if (bytes.Length < 8) throw Bad("file is shorter than the 8-byte header length");
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > MaxHeaderBytes || 8 + (long)headerLength > bytes.Length)
            throw Bad($"header length {headerLength} does not fit in a {bytes.Length}-byte file");
        // JsonNode checks names for UTF-8 only when they are first read, and then not as JsonException.
        if (!System.Text.Unicode.Utf8.IsValid(bytes.AsSpan(8, (int)headerLength))) throw Bad("header is not valid UTF-8");
        JsonObject header;
        try
        {
            // Duplicate names are refused here: JsonObject would otherwise throw on first access.
            header = JsonNode.Parse(bytes.AsSpan(8, (int)headerLength), documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false })
                as JsonObject ?? throw Bad("header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Bad($"header is not valid JSON ({e.Message})");
        }

        var dataStart = 8 + (long)headerLength;
        var tensors = new Dictionary<string, SafetensorsTensor>();
        var metadata = new Dictionary<string, string>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                if (node is not JsonObject entries) throw Bad("__metadata__ is not a JSON object");
                foreach (var (key, value) in entries)
                    metadata[key] = StringOf(value) ?? throw Bad($"__metadata__ value of '{key}' is not a string");
                continue;
            }
            if (node is not JsonObject entry) throw Bad($"tensor '{name}' is not a JSON object");
            var dtype = StringOf(entry["dtype"]) ?? throw Bad($"tensor '{name}' has no string dtype");
            if (!ElementSizes.TryGetValue(dtype, out var elementSize)) throw Bad($"tensor '{name}' has unsupported dtype {dtype}");
            var shape = LongsOf(entry["shape"]) ?? throw Bad($"tensor '{name}' has no shape of integers");
            var offsets = LongsOf(entry["data_offsets"]) ?? throw Bad($"tensor '{name}' has no data_offsets of integers");
            var available = bytes.Length - dataStart;
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > available
                || ByteCount(shape, elementSize, available) != offsets[1] - offsets[0])
                throw Bad($"tensor '{name}' has byte range [{string.Join(",", offsets)}] that does not match its shape [{string.Join(",", shape)}] or the file");
            tensors[name] = new SafetensorsTensor(dtype, shape, bytes.AsSpan((int)(dataStart + offsets[0]), (int)(offsets[1] - offsets[0])).ToArray());
        }
        if (metadata.Remove(ChecksumKey, out var stored) && Checksum(tensors, metadata) is var actual && actual != stored)
            throw Bad($"checksum mismatch: the file says {ChecksumKey} {stored}, its content hashes to {actual}");
        return (tensors, metadata);
    }

    private static string? StringOf(JsonNode? node) => node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static long[]? LongsOf(JsonNode? node)
    {
        if (node is not JsonArray array) return null;
        var values = new long[array.Count];
        for (int i = 0; i < values.Length; i++)
            if (array[i] is not JsonValue value || !value.TryGetValue(out values[i])) return null;
        return values;
    }

    /// <summary>The shape's size in bytes, or -1 when a dimension is negative or the size passes <paramref name="limit"/> (without overflowing).</summary>
    private static long ByteCount(long[] shape, int elementSize, long limit)
    {
        if (shape.Any(dimension => dimension < 0)) return -1;
        if (shape.Contains(0)) return 0;
        long size = elementSize;
        foreach (var dimension in shape)
        {
            if (size > limit / dimension) return -1;
            size *= dimension;
        }
        return size;
    }

    /// <summary>
    /// SHA-256 over the tensors (by name: name, dtype, shape, bytes) and the metadata (by key),
    /// so it does not depend on the order the header lists them in.
    /// </summary>
    private static string Checksum(IReadOnlyDictionary<string, SafetensorsTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Text(string text) => hash.AppendData(System.Text.Encoding.UTF8.GetBytes(text + "\0"));
        foreach (var (name, tensor) in tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            Text(name);
            Text(tensor.DType);
            Text(string.Join(",", tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))));
            hash.AppendData(tensor.Data);
        }
        foreach (var (key, value) in metadata.Where(m => m.Key != ChecksumKey).OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            Text(key);
            Text(value);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static int ElementSize(string dtype) =>
        ElementSizes.TryGetValue(dtype, out var size) ? size : throw new InvalidDataException($"unsupported safetensors dtype {dtype}");
}
