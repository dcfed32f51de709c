using System.Buffers.Binary;
using Distill.Client.Internal;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;

namespace Distill.Client.Tests;

public class TensorDecodingTests
{
    [Fact]
    public void Float32_little_endian_bytes_decode_with_their_shape()
    {
        var bytes = new byte[6 * 4];
        float[] values = [1f, -2.5f, 3.25f, 0f, 1e-7f, float.MaxValue];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        var tensor = new Tensor { Shape = { 1, 2, 1, 3 }, Dtype = DataType.Float32, Data = ByteString.CopyFrom(bytes) };

        var decoded = Tensors.Decode(tensor)!;

        Assert.Equal([1, 2, 1, 3], decoded.Shape);
        Assert.Equal(values, decoded.Data);
        Assert.Equal(3.25f, decoded[0, 0, 0, 2]);
        Assert.Equal(float.MaxValue, decoded[0, 1, 0, 2]);
    }

    [Fact]
    public void Hand_written_float32_bytes_are_read_little_endian()
    {
        // 1.0f is 0x3F800000: little-endian 00 00 80 3F; -2.0f is 0xC0000000.
        var tensor = new Tensor { Shape = { 2 }, Dtype = DataType.Float32, Data = ByteString.CopyFrom(0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0) };
        Assert.Equal([1f, -2f], Tensors.Decode(tensor)!.Data);
    }

    [Theory]
    [InlineData(DataType.Float64)]
    [InlineData(DataType.Unspecified)]  // a result's default is float64
    public void Float64_bytes_narrow_to_float32(DataType dtype)
    {
        double[] values = [0.5, -1.0 / 3, 2e10];
        var bytes = new byte[values.Length * 8];
        for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), values[i]);
        var tensor = new Tensor { Shape = { 3, 1 }, Dtype = dtype, Data = ByteString.CopyFrom(bytes) };

        var decoded = Tensors.Decode(tensor)!;

        Assert.Equal([3, 1], decoded.Shape);
        Assert.Equal(values.Select(v => (float)v), decoded.Data);
    }

    [Fact]
    public void Bytes_that_do_not_fill_the_shape_are_refused()
    {
        var tensor = new Tensor { Shape = { 2, 2 }, Dtype = DataType.Float32, Data = ByteString.CopyFrom(new byte[12]) };
        Assert.Throws<InvalidDataException>(() => Tensors.Decode(tensor));
    }

    [Fact]
    public void An_unset_tensor_is_null_and_an_empty_one_is_empty()
    {
        Assert.Null(Tensors.Decode(null));
        var empty = Tensors.Decode(new Tensor { Shape = { 0, 3 }, Dtype = DataType.Float32 })!;
        Assert.Empty(empty.Data);
        Assert.Equal([0, 3], empty.Shape);
    }
}
