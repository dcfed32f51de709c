using System.Buffers.Binary;

namespace Distill.Fuzz.Readers;

/// <summary>
/// Several files in one fuzz input, for readers that read more than one file (IDX images and
/// labels, a train and a test image): each part but the last is prefixed by its length
/// (4 bytes, little-endian), the last takes the rest. A length that runs past the end is cut
/// short, so every byte string splits into parts and AFL may mutate the lengths too.
/// </summary>
public static class InputParts
{
    public static byte[][] Split(byte[] input, int count)
    {
        var parts = new byte[count][];
        int position = 0;
        for (int i = 0; i < count - 1; i++)
        {
            int left = input.Length - position;
            int length = left < 4 ? 0 : (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(input.AsSpan(position)), (uint)(left - 4));
            position += Math.Min(4, left);
            parts[i] = input.AsSpan(position, length).ToArray();
            position += length;
        }
        parts[count - 1] = input.AsSpan(position).ToArray();
        return parts;
    }

    public static byte[] Join(params byte[][] parts)
    {
        using var output = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        for (int i = 0; i < parts.Length; i++)
        {
            if (i < parts.Length - 1)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)parts[i].Length);
                output.Write(length);
            }
            output.Write(parts[i]);
        }
        return output.ToArray();
    }
}
