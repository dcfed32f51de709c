using Google.Protobuf;
using static TorchSharp.torch;
using TensorMessage = Distill.Protos.Kernel.V1.Tensor;
using DType = Distill.Protos.Kernel.V1.DType;

namespace Distill.Protos.Conversions;

/// <summary>
/// Tensor messages to and from TorchSharp tensors: row-major little-endian float32 or
/// float64 bytes with an explicit shape. Reading validates the message and names the
/// field it came from in every error.
/// </summary>
public static class TensorMessages
{
    public static TensorMessage ToMessage(this Tensor tensor, DType dtype = DType.Float64)
    {
        using var scope = NewDisposeScope();
        var message = new TensorMessage { Dtype = dtype };
        message.Shape.AddRange(tensor.shape);
        var contiguous = tensor.detach().to_type(dtype == DType.Float32 ? ScalarType.Float32 : ScalarType.Float64).contiguous();
        // One copy, straight from the tensor's storage.
        message.Data = ByteString.CopyFrom(contiguous.bytes);
        return message;
    }

    /// <summary>A float64 tensor with the message's values; throws <see cref="ArgumentException"/> naming <paramref name="field"/>.</summary>
    public static Tensor ToTorch(this TensorMessage? message, string field, bool allowNonFinite = false)
    {
        if (message is null)
            throw new ArgumentException($"{field}: required", field);
        var elementSize = message.Dtype switch
        {
            DType.Float32 => 4,
            DType.Float64 => 8,
            _ => throw new ArgumentException($"{field}.dtype: must be DTYPE_FLOAT32 or DTYPE_FLOAT64, got {message.Dtype}", field),
        };
        if (message.Shape.Any(s => s < 0))
            throw new ArgumentException($"{field}.shape: dimensions must be non-negative, got [{string.Join(",", message.Shape)}]", field);
        long count = 1;
        foreach (var s in message.Shape)
            count = checked(count * s);
        if (count * elementSize != message.Data.Length)
            throw new ArgumentException($"{field}.data: shape [{string.Join(",", message.Shape)}] of {message.Dtype} needs {count * elementSize} bytes, got {message.Data.Length}", field);

        var shape = message.Shape.ToArray();
        var result = empty(shape, dtype: message.Dtype == DType.Float32 ? ScalarType.Float32 : ScalarType.Float64);
        message.Data.Span.CopyTo(result.bytes);
        if (message.Dtype == DType.Float32)
        {
            using var single = result;
            result = single.to_type(ScalarType.Float64);
        }
        if (!allowNonFinite && count > 0)
        {
            bool finite;
            using (NewDisposeScope()) finite = result.isfinite().all().item<bool>();
            if (!finite)
            {
                result.Dispose();
                throw new ArgumentException($"{field}.data: contains NaN or infinite values", field);
            }
        }
        return result;
    }

    /// <summary>Bytes per element of a result dtype (float64 unless float32 is asked for).</summary>
    public static int ElementSize(DType dtype) => dtype == DType.Float32 ? 4 : 8;
}
