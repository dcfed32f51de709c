using Distill.Core.Data;
using SkiaSharp;
using static Distill.Core.Tests.Data.DatasetFileWriter;

namespace Distill.Core.Tests.Data;

public sealed class ImageFolderReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    // Every channel and position distinct, so plane order and row/column order are both checked.
    private static SKColor Pattern(int x, int y, int seed) =>
        new((byte)(seed + 10 * x + 40 * y), (byte)(100 + seed + x), (byte)(200 + seed + y));

    private static byte[] PatternPng(int seed, int width = 3, int height = 2) =>
        RgbImage(width, height, (x, y) => Pattern(x, y, seed));

    private static float[] PatternPixels(int seed, int width = 3, int height = 2)
    {
        var colors = Enumerable.Range(0, height).SelectMany(y => Enumerable.Range(0, width).Select(x => Pattern(x, y, seed))).ToArray();
        return [.. colors.Select(c => c.Red / 255f), .. colors.Select(c => c.Green / 255f), .. colors.Select(c => c.Blue / 255f)];
    }

    [Fact]
    public void Read_PngFolders_ReturnsExactPixelsInSortedOrder()
    {
        // Created out of order: classes and files must come back sorted by name.
        _dir.Write("train/zebra/b.png", PatternPng(3));
        _dir.Write("train/zebra/a.png", PatternPng(2));
        _dir.Write("train/apple/x.PNG", PatternPng(1));
        _dir.Write("train/apple/notes.txt", [1, 2, 3]);
        _dir.Write("test/apple/t.png", PatternPng(4));
        Directory.CreateDirectory(_dir.PathOf("test", "zebra"));

        var dataset = ImageFolderReader.Read(_dir.Root, "pets");

        Assert.Equal("pets", dataset.Name);
        Assert.Equal(["apple", "zebra"], dataset.Train.ClassNames);
        Assert.Equal([0, 1, 1], dataset.Train.Labels);
        Assert.Equal((3, 2, 3), (dataset.Train.Channels, dataset.Train.Height, dataset.Train.Width));
        Assert.Equal([.. PatternPixels(1), .. PatternPixels(2), .. PatternPixels(3)], dataset.Train.Pixels);
        Assert.Equal([0], dataset.Test.Labels);
        Assert.Equal(PatternPixels(4), dataset.Test.Pixels);
    }

    [Fact]
    public void Read_JpegFolders_ReturnsApproximatePixels()
    {
        var orange = new SKColor(240, 120, 30);
        _dir.Write("train/a/0.jpg", RgbImage(8, 8, (_, _) => orange, SKEncodedImageFormat.Jpeg));
        _dir.Write("test/a/0.jpeg", RgbImage(8, 8, (_, _) => orange, SKEncodedImageFormat.Jpeg));

        var dataset = ImageFolderReader.Read(_dir.Root, "jpeg");

        Assert.Equal(3, dataset.Train.Channels);
        float[] expected = [240 / 255f, 120 / 255f, 30 / 255f];
        for (int c = 0; c < 3; c++)
            Assert.All(dataset.Train.Pixels[(c * 64)..((c + 1) * 64)], v => Assert.InRange(v, expected[c] - 0.03f, expected[c] + 0.03f));
    }

    [Fact]
    public void Read_AllGrayscale_ReturnsOneChannel()
    {
        _dir.Write("train/a/0.png", GrayPng(2, 2, (x, y) => (byte)(50 * x + 100 * y)));
        _dir.Write("test/a/0.png", GrayPng(2, 2, (_, _) => 255));

        var dataset = ImageFolderReader.Read(_dir.Root, "gray");

        Assert.Equal(1, dataset.Train.Channels);
        Assert.Equal([0f, 50 / 255f, 100 / 255f, 150 / 255f], dataset.Train.Pixels);
        Assert.Equal([1f, 1f, 1f, 1f], dataset.Test.Pixels);
    }

    [Fact]
    public void Read_GrayscaleAndColour_ReturnsThreeChannels()
    {
        _dir.Write("train/a/0.png", GrayPng(3, 2, (_, _) => 51));
        _dir.Write("test/a/0.png", PatternPng(5));

        var dataset = ImageFolderReader.Read(_dir.Root, "mixed");

        Assert.Equal(3, dataset.Train.Channels);
        Assert.All(dataset.Train.Pixels, v => Assert.Equal(51 / 255f, v));
        Assert.Equal(PatternPixels(5), dataset.Test.Pixels);
    }

    [Fact]
    public void Read_UndecodableFile_ThrowsNamingIt()
    {
        _dir.Write("train/a/0.png", PatternPng(1));
        string broken = _dir.Write("train/a/1.png", "not an image"u8.ToArray());
        _dir.Write("test/a/0.png", PatternPng(1));

        var ex = Assert.Throws<DatasetFormatException>(() => ImageFolderReader.Read(_dir.Root, "broken"));

        Assert.Contains(broken, ex.Message);
        Assert.Contains("could not be decoded", ex.Message);
    }

    [Fact]
    public void Read_MismatchedSizes_ThrowsNamingFileAndBothSizes()
    {
        _dir.Write("train/a/0.png", PatternPng(1, 3, 2));
        _dir.Write("train/b/0.png", PatternPng(1, 3, 2));
        string odd = _dir.Write("test/b/0.png", PatternPng(1, 4, 5));
        _dir.Write("test/a/0.png", PatternPng(1, 3, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => ImageFolderReader.Read(_dir.Root, "sizes"));

        Assert.Contains(odd, ex.Message);
        Assert.Contains("is 4x5 pixels", ex.Message);
        Assert.Contains("is 3x2", ex.Message);
    }

    [Fact]
    public void Read_TestClassFolderMissing_ThrowsNamingClass()
    {
        _dir.Write("train/cat/0.png", PatternPng(1));
        _dir.Write("train/dog/0.png", PatternPng(1));
        _dir.Write("test/cat/0.png", PatternPng(1));

        var ex = Assert.Throws<DatasetFormatException>(() => ImageFolderReader.Read(_dir.Root, "pets"));

        Assert.Contains(_dir.PathOf("test"), ex.Message);
        Assert.Contains("missing class folders dog", ex.Message);
    }

    [Fact]
    public void Read_NoTestFolder_ThrowsNamingIt()
    {
        _dir.Write("train/cat/0.png", PatternPng(1));

        var ex = Assert.Throws<DatasetFormatException>(() => ImageFolderReader.Read(_dir.Root, "pets"));

        Assert.Contains(_dir.Root, ex.Message);
        Assert.Contains("missing test/ subfolder", ex.Message);
    }

    [Fact]
    public void ReadSplit_GivenClassNames_LabelsByGivenOrder()
    {
        _dir.Write("val/cat/0.png", PatternPng(1));
        _dir.Write("val/dog/0.png", PatternPng(2));

        var split = ImageFolderReader.ReadSplit(_dir.PathOf("val"), ["dog", "cat"]);

        Assert.Equal([0, 1], split.Labels);
        Assert.Equal([.. PatternPixels(2), .. PatternPixels(1)], split.Pixels);
    }

    [Fact]
    public void ReadSplit_UnexpectedClassFolder_ThrowsNamingIt()
    {
        _dir.Write("val/cat/0.png", PatternPng(1));
        _dir.Write("val/cow/0.png", PatternPng(1));

        var ex = Assert.Throws<DatasetFormatException>(() => ImageFolderReader.ReadSplit(_dir.PathOf("val"), ["cat"]));

        Assert.Contains("unexpected class folders cow", ex.Message);
    }

    [Fact]
    public void Read_MorePixelsThanTheBudget_IsRefusedBeforeAnyImageIsDecoded()
    {
        _dir.Write("train/a/1.png", PatternPng(1));
        _dir.Write("train/b/2.png", PatternPng(2));
        // A sound header over garbage pixel data: decoding it would fail as a format error, so
        // a refusal over the budget shows that the budget was checked first.
        var broken = PatternPng(3);
        int idat = broken.AsSpan().IndexOf("IDAT"u8);
        broken.AsSpan(idat + 4, broken.Length - 12 - idat - 4).Fill(0xFF);
        _dir.Write("test/a/3.png", broken);
        _dir.Write("test/b/4.png", PatternPng(4));

        Assert.Throws<DatasetFormatException>(() => ImageFolderReader.Read(_dir.Root, "tiny"));
        var ex = Assert.Throws<Distill.Core.Errors.LimitExceededException>(() =>
            ImageFolderReader.Read(_dir.Root, "tiny", new DatasetReadBudget(3 * 3 * 2 * 3, "test:limit")));

        Assert.Equal("test:limit", ex.Subject);
        Assert.Contains("4 images of 3x2x3", ex.Message);
    }
}
