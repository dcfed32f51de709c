using Distill.Core.Errors;
using Distill.Core.Runtime;
using Google.Protobuf;
using static TorchSharp.torch;
using DataType = Distill.Protos.Kernel.V1.DataType;
using TensorMessage = Distill.Protos.Kernel.V1.Tensor;

namespace Distill.Adapters.Conversions;

/// <summary>
/// Tensor messages to and from TorchSharp tensors: row-major little-endian float32 or
/// float64 bytes with an explicit shape. Reading validates the message and names the
/// field it came from in every error.
/// </summary>
public static class TensorMessages
{
    /// <summary>The tensor as a message, in <paramref name="shape"/> when given (images keep N x C x H x W on the wire).</summary>
    public static TensorMessage ToMessage(this Tensor tensor, DataType dtype = DataType.Float64, long[]? shape = null)
    {
        using var scope = NewDisposeScope();
        var message = new TensorMessage { Dtype = dtype == DataType.Float32 ? DataType.Float32 : DataType.Float64 };
        message.Shape.AddRange(shape ?? tensor.shape);
        // Results leave the device here, at the service edge.
        var contiguous = tensor.detach().cpu().to_type(message.Dtype == DataType.Float32 ? ScalarType.Float32 : ScalarType.Float64).contiguous();
        if (shape is not null && shape.Aggregate(1L, (a, b) => a * b) != contiguous.numel())
            throw new ArgumentException($"shape [{string.Join(",", shape)}] does not hold the tensor's {contiguous.numel()} elements");
        // One copy, straight from the tensor's storage.
        message.Data = ByteString.CopyFrom(contiguous.bytes);
        return message;
    }

    /// <summary>Dimensions a tensor message may have.</summary>
    public const int MaxDimensions = 8;

    /// <summary>A float64 tensor with the message's values; throws <see cref="InvalidFieldException"/> naming <paramref name="field"/>.</summary>
    public static Tensor ToTorch(this TensorMessage? message, string field, bool allowNonFinite = false)
    {
        if (message is null)
            throw new InvalidFieldException(field, "required");
        var elementSize = message.Dtype switch
        {
            DataType.Float32 => 4,
            DataType.Float64 => 8,
            _ => throw new InvalidFieldException($"{field}.dtype", $"must be DATA_TYPE_FLOAT32 or DATA_TYPE_FLOAT64, got {message.Dtype}"),
        };
        // Images need four dimensions. Far more (a fuzzed shape had a million 1s) stalls
        // libtorch's element-wise kernels on one tensor of a single element.
        if (message.Shape.Count > MaxDimensions)
            throw new InvalidFieldException($"{field}.shape", $"at most {MaxDimensions} dimensions, got {message.Shape.Count}");
        if (message.Shape.Any(s => s < 0))
            throw new InvalidFieldException($"{field}.shape", $"dimensions must be non-negative, got [{string.Join(",", message.Shape)}]");
        long count = 1;
        try
        {
            foreach (var s in message.Shape)
                count = checked(count * s);
            if (checked(count * elementSize) != message.Data.Length)
                throw new InvalidFieldException($"{field}.data", $"shape [{string.Join(",", message.Shape)}] of {message.Dtype} needs {count * elementSize} bytes, got {message.Data.Length}");
        }
        catch (OverflowException)
        {
            throw new InvalidFieldException($"{field}.shape", $"[{string.Join(",", message.Shape)}] has too many elements");
        }

        var shape = message.Shape.ToArray();
        var result = empty(shape, dtype: message.Dtype == DataType.Float32 ? ScalarType.Float32 : ScalarType.Float64);
        message.Data.Span.CopyTo(result.bytes);
        if (message.Dtype == DataType.Float32)
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
                throw new InvalidFieldException($"{field}.data", "contains NaN or infinite values");
            }
        }
        return result.MoveToComputeDevice();
    }

    /// <summary>Bytes per element of a result dtype (float64 unless float32 is asked for).</summary>
    public static int ElementSize(DataType dtype) => dtype == DataType.Float32 ? 4 : 8;
}
