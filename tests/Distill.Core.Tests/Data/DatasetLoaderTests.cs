using Distill.Core.Data;
using static Distill.Core.Tests.Data.DatasetFileWriter;

namespace Distill.Core.Tests.Data;

public sealed class DatasetLoaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly byte[] OneImage = [0, 64, 128, 255];

    private string WriteIdx(string folder)
    {
        _dir.Write($"{folder}/train-images-idx3-ubyte.gz", Gzip(IdxImages(1, 2, 2, OneImage)));
        _dir.Write($"{folder}/train-labels-idx1-ubyte.gz", Gzip(IdxLabels(3)));
        _dir.Write($"{folder}/t10k-images-idx3-ubyte", IdxImages(1, 2, 2, OneImage));
        _dir.Write($"{folder}/t10k-labels-idx1-ubyte", IdxLabels(4));
        return _dir.PathOf(folder);
    }

    private static byte[] Pixels(int channel, int index) => [(byte)(channel + index)];

    [Fact]
    public void Load_IdxLayout_DetectsIdxAndNamesAfterDirectory()
    {
        string path = WriteIdx("fashion");

        var dataset = DatasetLoader.Load(path + Path.DirectorySeparatorChar);

        Assert.Equal("fashion", dataset.Name);
        Assert.Equal([3], dataset.Train.Labels);
        Assert.Equal(OneImage.Select(b => b / 255f), dataset.Test.Pixels);
        Assert.Equal("idx", DatasetLoader.DetectFormat(path));
    }

    [Fact]
    public void Load_Cifar10Layout_DetectsCifar10()
    {
        for (int b = 1; b <= 5; b++)
            _dir.Write($"c10/data_batch_{b}.bin.gz", Gzip(Cifar10Record((byte)b, (c, p) => (byte)(c + p))));
        _dir.Write("c10/test_batch.bin", Cifar10Record(0, (c, p) => (byte)(c + p)));

        var dataset = DatasetLoader.Load(_dir.PathOf("c10"));

        Assert.Equal("c10", dataset.Name);
        Assert.Equal(5, dataset.Train.Count);
        Assert.Equal("airplane", dataset.Test.ClassNames[0]);
    }

    [Fact]
    public void Load_Cifar100Layout_DetectsCifar100()
    {
        _dir.Write("c100/train.bin", Cifar100Record(1, 55, (c, p) => (byte)(c + p)));
        _dir.Write("c100/test.bin", Cifar100Record(1, 66, (c, p) => (byte)(c + p)));

        var dataset = DatasetLoader.Load(_dir.PathOf("c100"));

        Assert.Equal("c100", dataset.Name);
        Assert.Equal([55], dataset.Train.Labels);
        Assert.Equal(100, dataset.Train.ClassCount);
    }

    [Fact]
    public void Load_FolderLayout_DetectsFolder()
    {
        _dir.Write("shapes/train/circle/0.png", GrayPng(2, 2, (_, _) => 0));
        _dir.Write("shapes/train/square/0.png", GrayPng(2, 2, (_, _) => 255));
        _dir.Write("shapes/test/circle/0.png", GrayPng(2, 2, (_, _) => 0));
        _dir.Write("shapes/test/square/0.png", GrayPng(2, 2, (_, _) => 255));

        var dataset = DatasetLoader.Load(_dir.PathOf("shapes"));

        Assert.Equal("shapes", dataset.Name);
        Assert.Equal(["circle", "square"], dataset.Train.ClassNames);
        Assert.Equal([0, 1], dataset.Test.Labels);
    }

    [Fact]
    public void Load_ExplicitFormatDifferentCase_UsesIt()
    {
        string path = WriteIdx("digits");

        var dataset = DatasetLoader.Load(path, "IDX");

        Assert.Equal(2, dataset.Train.Height);
    }

    [Fact]
    public void Load_UndetectableLayout_ThrowsListingSupportedLayouts()
    {
        _dir.Write("odd/readme.txt", [1]);

        var ex = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(_dir.PathOf("odd")));

        Assert.Contains(_dir.PathOf("odd"), ex.Message);
        Assert.Contains("could not detect the dataset layout", ex.Message);
        foreach (string format in DatasetLoader.Formats)
            Assert.Contains(format + ":", ex.Message);
    }

    [Fact]
    public void Load_UnknownFormat_ThrowsInvalidFieldListingFormats()
    {
        string path = WriteIdx("digits");

        var ex = Assert.Throws<Distill.Core.Errors.InvalidFieldException>(() => DatasetLoader.Load(path, "tfrecord"));

        Assert.Contains("'tfrecord'", ex.Message);
        Assert.Contains(Path.GetFileName(path), ex.Message);
        Assert.Contains("idx, cifar10, cifar100, folder", ex.Message);
    }

    [Fact]
    public void Load_MissingDirectory_ThrowsDirectoryNotFoundWithPath()
    {
        string path = _dir.PathOf("nowhere");

        var ex = Assert.Throws<DirectoryNotFoundException>(() => DatasetLoader.Load(path));

        Assert.Contains(path, ex.Message);
    }
}
