using Distill.Core.Data;
using Distill.Core.Errors;

namespace Distill.Core.Tests.Data;

public sealed class DataRootTests : IDisposable
{
    private readonly TempDirectory _root = new();

    // Found by the gRPC fuzzer: RegisterDataset with "runs/\0/snapshots/-1x" ended INTERNAL,
    // from the ArgumentException Path.GetFullPath throws on a null character.
    [Fact]
    public void Resolve_PathWithANullCharacter_IsAnInvalidField()
    {
        var error = Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(_root.Root, "runs/\0/snapshots/-1x"));
        Assert.Equal("path", error.Field);
    }

    [Fact]
    public void Resolve_PathOutsideTheRoot_IsAnInvalidField()
    {
        var error = Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(_root.Root, "../.."));
        Assert.Contains("outside", error.Description);
    }

    public void Dispose() => _root.Dispose();
}
