using Distill.Core.Checkpoints;

namespace Distill.Core.Tests.Checkpoints;

public sealed class CheckpointFilesTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("distill-checkpoints-");

    [Fact]
    public void LoadNewestGood_NoCheckpoint_IsNull() => Assert.Null(CheckpointFiles.LoadNewestGood(_folder.FullName));

    [Fact]
    public void LoadNewestGood_BothDamaged_ReportsEachByNameThenFailsNamingBoth()
    {
        File.WriteAllBytes(Path.Combine(_folder.FullName, CheckpointFiles.Latest), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(_folder.FullName, CheckpointFiles.Previous), new byte[64]);
        var rejected = new List<(string File, string Reason)>();

        var error = Assert.Throws<InvalidDataException>(() => CheckpointFiles.LoadNewestGood(_folder.FullName, (file, reason) => rejected.Add((file, reason))));

        Assert.Equal([CheckpointFiles.Latest, CheckpointFiles.Previous], rejected.Select(r => r.File));
        Assert.Contains($"{CheckpointFiles.Latest}: ", error.Message);
        Assert.Contains($"{CheckpointFiles.Previous}: ", error.Message);
        // Reasons name the file, not the server's folder.
        Assert.DoesNotContain(_folder.FullName, error.Message);
    }

    public void Dispose() => _folder.Delete(recursive: true);
}
