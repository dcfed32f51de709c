using System.IO.Compression;
using System.Text;

namespace Distill.Core.Output;

/// <summary>
/// NumPy's .npz: a zip of .npy files (format 1.0: magic, a Python-literal header padded
/// to 64 bytes, little-endian data), readable with numpy.load.
/// </summary>
public static class NpzFile
{
    public static void Write(string path, IReadOnlyDictionary<string, SafetensorsTensor> arrays)
    {
        AtomicFile.Write(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            foreach (var (name, array) in arrays)
            {
                using var entry = zip.CreateEntry(name + ".npy", CompressionLevel.Fastest).Open();
                var descr = array.DType switch
                {
                    "F32" => "<f4",
                    "F64" => "<f8",
                    "I64" => "<i8",
                    // Bytes (the safetensors reader's U8) have no byte order.
                    "U8" => "|u1",
                    _ => throw new ArgumentException($"array '{name}': dtype {array.DType} has no .npy equivalent"),
                };
                var shape = array.Shape.Length == 1 ? $"({array.Shape[0]},)" : $"({string.Join(", ", array.Shape)})";
                var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
                var total = 10 + header.Length + 1;
                header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
                var headerBytes = Encoding.ASCII.GetBytes(header);
                entry.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
                entry.Write(BitConverter.GetBytes((ushort)headerBytes.Length));
                entry.Write(headerBytes);
                entry.Write(array.Data);
            }
        });
    }
}
