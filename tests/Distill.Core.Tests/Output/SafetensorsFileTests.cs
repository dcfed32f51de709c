using System.Buffers.Binary;
using System.Text.Json;
using Distill.Core.Output;

namespace Distill.Core.Tests.Output;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"distill-{Guid.NewGuid():N}.safetensors");

    [Fact]
    public void Write_ThenRead_RoundTripsTensorsAndMetadata()
    {
        SafetensorsFile.Write(_path, new Dictionary<string, SafetensorsTensor>
        {
            ["a"] = SafetensorsTensor.FromFloats([1f, 2f, 3f, 4f, 5f, 6f], 2, 3),
            ["b"] = SafetensorsTensor.FromDoubles([Math.PI], 1),
        }, new Dictionary<string, string> { ["note"] = "x" });

        var (tensors, metadata) = SafetensorsFile.Read(_path);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, 6f], tensors["a"].ToFloats());
        Assert.Equal([2L, 3L], tensors["a"].Shape);
        Assert.Equal(Math.PI, tensors["b"].ToDoubles()[0]);
        Assert.Equal("x", metadata["note"]);
    }

    [Fact]
    public void Write_Header_FollowsTheSpecification()
    {
        SafetensorsFile.Write(_path, new Dictionary<string, SafetensorsTensor> { ["t"] = SafetensorsTensor.FromFloats([1f, 2f], 2) });
        var bytes = File.ReadAllBytes(_path);
        var length = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, length % 8);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, length));
        var t = header.RootElement.GetProperty("t");
        Assert.Equal("F32", t.GetProperty("dtype").GetString());
        Assert.Equal(8, t.GetProperty("data_offsets")[1].GetInt64());
        Assert.Equal(8 + length + 8, bytes.Length);
        Assert.Equal(2f, BitConverter.ToSingle(bytes, 8 + length + 4));
    }

    [Fact]
    public void Read_TruncatedFile_FailsNamingTheFile()
    {
        SafetensorsFile.Write(_path, new Dictionary<string, SafetensorsTensor> { ["t"] = SafetensorsTensor.FromFloats([1f, 2f], 2) });
        var bytes = File.ReadAllBytes(_path);
        File.WriteAllBytes(_path, bytes[..^3]);
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Read(_path));
        Assert.Contains(_path, error.Message);
        Assert.Contains("'t'", error.Message);
    }

    [Fact]
    public void Read_FlippedByte_FailsItsChecksum()
    {
        SafetensorsFile.Write(_path, new Dictionary<string, SafetensorsTensor> { ["t"] = SafetensorsTensor.FromFloats([1f, 2f], 2) });
        var bytes = File.ReadAllBytes(_path);
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(_path, bytes);
        var error = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Read(_path));
        Assert.Contains("checksum mismatch", error.Message);
    }

    [Fact]
    public void Write_KeepingThePrevious_LeavesTwoGenerations()
    {
        var previous = _path + ".previous";
        try
        {
            SafetensorsFile.Write(_path, new Dictionary<string, SafetensorsTensor> { ["t"] = SafetensorsTensor.FromFloats([1f], 1) }, keepPreviousAs: previous);
            Assert.False(File.Exists(previous));
            SafetensorsFile.Write(_path, new Dictionary<string, SafetensorsTensor> { ["t"] = SafetensorsTensor.FromFloats([2f], 1) }, keepPreviousAs: previous);
            Assert.Equal([2f], SafetensorsFile.Read(_path).Tensors["t"].ToFloats());
            Assert.Equal([1f], SafetensorsFile.Read(previous).Tensors["t"].ToFloats());
        }
        finally
        {
            File.Delete(previous);
        }
    }

    public void Dispose() => File.Delete(_path);
}
