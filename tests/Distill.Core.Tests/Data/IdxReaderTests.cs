using Distill.Core.Data;
using static Distill.Core.Tests.Data.DatasetFileWriter;

namespace Distill.Core.Tests.Data;

public sealed class IdxReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    // Three 2x3 images whose pixels are all distinct, so any reordering shows.
    private static readonly byte[] Pixels = [.. Enumerable.Range(0, 18).Select(i => (byte)(i * 15))];

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Read_PlainFiles_ReturnsExactPixelsAndLabels()
    {
        string images = _dir.Write("images-idx3-ubyte", IdxImages(3, 2, 3, Pixels));
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(5, 0, 9));

        var split = IdxReader.Read(images, labels);

        Assert.Equal((3, 1, 2, 3), (split.Count, split.Channels, split.Height, split.Width));
        Assert.Equal(Pixels.Select(b => b / 255f), split.Pixels);
        Assert.Equal([5, 0, 9], split.Labels);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => i.ToString()), split.ClassNames);
    }

    [Fact]
    public void Read_GzippedFilesWithoutGzExtension_DetectsGzipByMagic()
    {
        string images = _dir.Write("images-idx3-ubyte", Gzip(IdxImages(3, 2, 3, Pixels)));
        string labels = _dir.Write("labels-idx1-ubyte.gz", Gzip(IdxLabels(1, 2, 3)));

        var split = IdxReader.Read(images, labels, ["a", "b", "c", "d"]);

        Assert.Equal(Pixels.Select(b => b / 255f), split.Pixels);
        Assert.Equal([1, 2, 3], split.Labels);
        Assert.Equal(["a", "b", "c", "d"], split.ClassNames);
    }

    [Fact]
    public void Read_TruncatedImages_ThrowsNamingExpectedAndActualBytes()
    {
        byte[] full = IdxImages(3, 2, 3, Pixels);
        string images = _dir.Write("train-images-idx3-ubyte", full[..^5]);
        string labels = _dir.Write("train-labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("train-images-idx3-ubyte", ex.Message);
        Assert.Contains("truncated", ex.Message);
        Assert.Contains($"expected {full.Length} bytes but the file has {full.Length - 5}", ex.Message);
    }

    [Fact]
    public void Read_LabelFileAsImages_ThrowsNamingBothMagics()
    {
        string images = _dir.Write("train-images-idx3-ubyte.gz", Gzip(IdxLabels(0, 1, 2)));
        string labels = _dir.Write("train-labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("train-images-idx3-ubyte.gz: expected magic 0x00000803 for an IDX image file, found 0x00000801", ex.Message);
    }

    [Fact]
    public void Read_NonByteDataType_ThrowsNamingDataType()
    {
        byte[] floats = IdxImages(3, 2, 3, Pixels);
        floats[2] = 0x0D;
        string images = _dir.Write("images-idx3-ubyte", floats);
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("images-idx3-ubyte", ex.Message);
        Assert.Contains("data type 0x0D", ex.Message);
    }

    [Fact]
    public void Read_TrailingBytes_ThrowsNamingExtraByteCount()
    {
        string images = _dir.Write("images-idx3-ubyte", [.. IdxImages(3, 2, 3, Pixels), 1, 2, 3, 4]);
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("images-idx3-ubyte", ex.Message);
        Assert.Contains("4 trailing bytes", ex.Message);
    }

    [Fact]
    public void Read_LabelCountMismatch_ThrowsNamingBothCounts()
    {
        string images = _dir.Write("images-idx3-ubyte", IdxImages(3, 2, 3, Pixels));
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(0, 1));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("labels-idx1-ubyte", ex.Message);
        Assert.Contains("has 2 labels", ex.Message);
        Assert.Contains("has 3 images", ex.Message);
    }

    [Fact]
    public void Read_LabelOutOfRange_ThrowsNamingLabelAndIndex()
    {
        string images = _dir.Write("images-idx3-ubyte", IdxImages(3, 2, 3, Pixels));
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(0, 10, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("labels-idx1-ubyte", ex.Message);
        Assert.Contains("label 10 at index 1 is outside 0..9", ex.Message);
    }

    [Fact]
    public void Read_CorruptGzip_ThrowsNamingFile()
    {
        // A gzip header followed by a deflate block of the reserved type 3, which no inflater accepts.
        byte[] corrupt = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 0x07, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        string images = _dir.Write("train-images-idx3-ubyte.gz", corrupt);
        string labels = _dir.Write("train-labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("train-images-idx3-ubyte.gz", ex.Message);
        Assert.Contains("not a valid gzip stream", ex.Message);
    }

    [Fact]
    public void Read_TruncatedGzip_ThrowsNamingFile()
    {
        byte[] gzip = Gzip(IdxImages(3, 2, 3, Pixels));
        string images = _dir.Write("train-images-idx3-ubyte.gz", gzip[..(gzip.Length / 2)]);
        string labels = _dir.Write("train-labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("train-images-idx3-ubyte.gz", ex.Message);
    }

    [Fact]
    public void ReadDirectory_CanonicalNames_ReadsTrainAndTest()
    {
        _dir.Write("train-images-idx3-ubyte.gz", Gzip(IdxImages(3, 2, 3, Pixels)));
        _dir.Write("train-labels-idx1-ubyte.gz", Gzip(IdxLabels(7, 8, 9)));
        _dir.Write("t10k-images-idx3-ubyte", IdxImages(1, 2, 3, Pixels[..6]));
        _dir.Write("t10k-labels-idx1-ubyte", IdxLabels(4));

        var dataset = IdxReader.ReadDirectory(_dir.Root, "digits");

        Assert.Equal("digits", dataset.Name);
        Assert.Equal([7, 8, 9], dataset.Train.Labels);
        Assert.Equal([4], dataset.Test.Labels);
        Assert.Equal(Pixels[..6].Select(b => b / 255f), dataset.Test.Pixels);
    }

    [Fact]
    public void ReadDirectory_MissingFiles_ThrowsListingThem()
    {
        _dir.Write("train-images-idx3-ubyte.gz", Gzip(IdxImages(3, 2, 3, Pixels)));
        _dir.Write("train-labels-idx1-ubyte.gz", Gzip(IdxLabels(7, 8, 9)));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.ReadDirectory(_dir.Root, "digits"));

        Assert.Contains(_dir.Root, ex.Message);
        Assert.Contains("missing IDX files: t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]", ex.Message);
    }

    [Fact]
    public void ReadDirectory_TestSizeDiffersFromTrain_ThrowsNamingBothSizes()
    {
        _dir.Write("train-images-idx3-ubyte", IdxImages(3, 2, 3, Pixels));
        _dir.Write("train-labels-idx1-ubyte", IdxLabels(7, 8, 9));
        _dir.Write("t10k-images-idx3-ubyte", IdxImages(1, 3, 2, Pixels[..6]));
        _dir.Write("t10k-labels-idx1-ubyte", IdxLabels(4));

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.ReadDirectory(_dir.Root, "digits"));

        Assert.Contains("t10k-images-idx3-ubyte", ex.Message);
        Assert.Contains("3x2", ex.Message);
        Assert.Contains("2x3", ex.Message);
    }

    [Fact]
    public void Read_HeaderDeclaringMoreThanTheBudget_IsRefusedBeforeTheBodyIsRead()
    {
        // 4,000,000 images of 28x28 declared (3.1 GB), a body of three bytes, gzipped: had the
        // reader decompressed first, it would fail as truncated, not as over the limit.
        byte[] header = IdxImages(3, 2, 3, Pixels)[..16];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), 4_000_000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), 28);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), 28);
        string images = _dir.Write("images-idx3-ubyte.gz", Gzip([.. header, 1, 2, 3]));
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(0, 1, 2));

        var ex = Assert.Throws<Distill.Core.Errors.LimitExceededException>(() =>
            IdxReader.Read(images, labels, budget: new DatasetReadBudget(1_000_000, "test:limit")));

        Assert.Equal("test:limit", ex.Subject);
        Assert.Contains("4000000 images of 28x28", ex.Message);
    }

    [Fact]
    public void Read_GzipInflatingPastTheHeader_StopsAtTheDeclaredSize()
    {
        // A gzip bomb behind an honest-looking header: 3 images declared, 50 MB of zeros inflated.
        var body = new byte[50 << 20];
        string images = _dir.Write("images-idx3-ubyte.gz", Gzip([.. IdxImages(3, 2, 3, Pixels), .. body]));
        string labels = _dir.Write("labels-idx1-ubyte", IdxLabels(0, 1, 2));
        long before = GC.GetAllocatedBytesForCurrentThread();

        var ex = Assert.Throws<DatasetFormatException>(() => IdxReader.Read(images, labels));

        Assert.Contains("trailing bytes", ex.Message);
        // The reader's buffers are tens of kilobytes; the bomb would be fifty megabytes.
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4 << 20, "the reader inflated the whole stream");
    }
}
