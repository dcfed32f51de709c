using Distill.Core.Data;
using Distill.Core.Errors;

namespace Distill.Core.Tests.Data;

/// <summary>Paths callers name may not leave the data root, by any route the file system offers.</summary>
public sealed class DataRootTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly TempDirectory _outside = new();
    private string Root => _dir.PathOf("root");

    public DataRootTests()
    {
        _dir.Write("root/mnist/train-images-idx3-ubyte", [0]);
        _outside.Write("secret/train-images-idx3-ubyte", [1]);
    }

    public void Dispose()
    {
        _dir.Dispose();
        _outside.Dispose();
    }

    [Fact]
    public void A_folder_under_the_root_resolves_to_its_full_path() =>
        Assert.Equal(Path.Combine(Root, "mnist"), DataRoot.Resolve(Root, "mnist"));

    [Theory]
    [InlineData("..")]
    [InlineData("../root/../..")]
    [InlineData("mnist/../../")]
    [InlineData("/etc")]
    public void Dot_dot_and_absolute_paths_are_refused(string path)
    {
        var error = Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(Root, path));
        Assert.Equal("path", error.Field);
    }

    // Found by the gRPC fuzzer: RegisterDataset with "runs/\0/snapshots/-1x" ended INTERNAL,
    // from the ArgumentException Path.GetFullPath throws on a null character.
    [Fact]
    public void A_null_character_is_an_invalid_field()
    {
        var error = Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(Root, "runs/\0/snapshots/-1x"));
        Assert.Equal("path", error.Field);
    }

    [Fact]
    public void A_link_at_the_end_of_the_path_is_judged_by_where_it_leads()
    {
        Directory.CreateSymbolicLink(Path.Combine(Root, "escape"), _outside.PathOf("secret"));
        Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(Root, "escape"));
    }

    [Fact]
    public void A_link_in_the_middle_of_the_path_is_judged_by_where_it_leads()
    {
        Directory.CreateSymbolicLink(Path.Combine(Root, "away"), _outside.Root);
        Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(Root, "away/secret"));
    }

    [Fact]
    public void A_relative_link_climbing_out_is_refused()
    {
        Directory.CreateSymbolicLink(Path.Combine(Root, "up"), Path.Combine("..", ".."));
        Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(Root, "up"));
    }

    [Fact]
    public void A_file_inside_the_dataset_linking_outside_is_refused()
    {
        File.CreateSymbolicLink(Path.Combine(Root, "mnist", "train-labels-idx1-ubyte"), _outside.PathOf("secret", "train-images-idx3-ubyte"));
        var error = Assert.Throws<InvalidFieldException>(() => DataRoot.Resolve(Root, "mnist"));
        Assert.Contains("link", error.Message);
    }

    [Fact]
    public void Links_that_stay_inside_the_root_are_followed()
    {
        Directory.CreateSymbolicLink(Path.Combine(Root, "alias"), Path.Combine(Root, "mnist"));
        File.CreateSymbolicLink(Path.Combine(Root, "mnist", "copy"), Path.Combine(Root, "mnist", "train-images-idx3-ubyte"));
        Assert.Equal(Path.Combine(Root, "alias"), DataRoot.Resolve(Root, "alias"));
    }

    [Fact]
    public void A_root_that_is_itself_a_link_still_serves_its_folders()
    {
        var linkedRoot = _dir.PathOf("linked-root");
        Directory.CreateSymbolicLink(linkedRoot, Root);
        Assert.Equal(Path.Combine(linkedRoot, "mnist"), DataRoot.Resolve(linkedRoot, "mnist"));
    }

    [Fact]
    public void A_missing_folder_is_not_found()
    {
        var error = Assert.Throws<ResourceNotFoundException>(() => DataRoot.Resolve(Root, "nothing"));
        Assert.Contains("nothing", error.Message);
    }
}
