namespace Distill.Client.Tests;

public class RunNameTests
{
    [Theory]
    [InlineData("run-abc")]
    [InlineData("runs/run-abc")]
    public void Ids_and_names_both_become_the_resource_name(string given)
    {
        Assert.Equal("runs/run-abc", RunNames.ToName(given));
        Assert.Equal("run-abc", RunNames.ToId(given));
        Assert.Equal("runs/run-abc/snapshots/40", RunNames.SnapshotName(given, 40));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("runs/")]
    [InlineData("runs/run-abc/snapshots/5")]
    [InlineData("datasets/mnist")]
    public void Other_strings_are_refused(string given) =>
        Assert.ThrowsAny<ArgumentException>(() => RunNames.ToName(given));
}
