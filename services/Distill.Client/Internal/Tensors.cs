using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Distill.Protos.Kernel.V1;

namespace Distill.Client.Internal;

/// <summary>Wire tensors (row-major, little-endian float32 or float64) to <see cref="TensorData"/>.</summary>
internal static class Tensors
{
    /// <summary>Null for an unset tensor (the basic view leaves them out).</summary>
    public static TensorData? Decode(Tensor? tensor)
    {
        if (tensor is null) return null;
        var shape = tensor.Shape.Select(d => d >= 0 && d <= int.MaxValue
            ? (int)d : throw new InvalidDataException($"tensor dimension {d} is out of range")).ToArray();
        long count = 1;
        foreach (var d in shape) count = checked(count * d);
        var bytes = tensor.Data.Span;
        // A result's unspecified dtype means float64 (kernel.proto).
        var width = tensor.Dtype == DataType.Float32 ? sizeof(float) : sizeof(double);
        if (tensor.Dtype is not (DataType.Float32 or DataType.Float64 or DataType.Unspecified))
            throw new InvalidDataException($"unsupported tensor dtype {tensor.Dtype}");
        if (bytes.Length != count * width)
            throw new InvalidDataException($"tensor of shape [{string.Join(", ", shape)}] needs {count * width} bytes, got {bytes.Length}");

        var data = new float[count];
        if (width == sizeof(float))
        {
            if (BitConverter.IsLittleEndian)
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(data);
            else
                for (var i = 0; i < data.Length; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
        }
        else
        {
            for (var i = 0; i < data.Length; i++) data[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(i * 8)..]);
        }
        return new TensorData(data, shape);
    }
}
