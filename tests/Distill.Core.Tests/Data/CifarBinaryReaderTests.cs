using Distill.Core.Data;
using static Distill.Core.Tests.Data.DatasetFileWriter;

namespace Distill.Core.Tests.Data;

public sealed class CifarBinaryReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] RedRecord(byte label) => Cifar10Record(label, (c, _) => c == 0 ? (byte)255 : (byte)0);

    // Different in every channel and position, so a swapped plane or a transposed image shows.
    private static byte PatternPixel(int channel, int index) => (byte)((channel * 85 + index * 7) % 256);

    private void WriteCifar10(Func<int, byte[]> trainBatch, byte[] test)
    {
        for (int b = 1; b <= 5; b++)
            _dir.Write($"data_batch_{b}.bin", trainBatch(b));
        _dir.Write("test_batch.bin", test);
    }

    [Fact]
    public void ReadCifar10Directory_RedRecord_PutsRedInChannelZero()
    {
        WriteCifar10(b => RedRecord((byte)b), RedRecord(9));

        var dataset = CifarBinaryReader.ReadCifar10Directory(_dir.Root);

        var train = dataset.Train;
        Assert.Equal((5, 3, 32, 32), (train.Count, train.Channels, train.Height, train.Width));
        Assert.All(train.Pixels[..1024], v => Assert.Equal(1f, v));
        Assert.All(train.Pixels[1024..3072], v => Assert.Equal(0f, v));
        Assert.Equal([1, 2, 3, 4, 5], train.Labels);
        Assert.Equal([9], dataset.Test.Labels);
        Assert.Equal(CifarBinaryReader.Cifar10ClassNames, train.ClassNames);
        Assert.Equal(Path.GetFileName(_dir.Root), dataset.Name);
    }

    [Fact]
    public void ReadCifar10Directory_PatternAndGzippedBatchAndMeta_ReadsExactValuesAndNames()
    {
        byte[] pattern = Cifar10Record(3, PatternPixel);
        WriteCifar10(b => b == 2 ? Gzip([.. pattern, .. pattern]) : pattern, pattern);
        _dir.Write("batches.meta.txt", System.Text.Encoding.UTF8.GetBytes(string.Join("\n", Enumerable.Range(0, 10).Select(i => $"class{i}")) + "\n\n"));

        var dataset = CifarBinaryReader.ReadCifar10Directory(_dir.Root);

        Assert.Equal(6, dataset.Train.Count);
        var expected = Enumerable.Range(0, 3072).Select(i => PatternPixel(i / 1024, i % 1024) / 255f);
        Assert.Equal(expected, dataset.Train.Pixels[(5 * 3072)..]);
        Assert.Equal("class3", dataset.Train.ClassNames[3]);
        Assert.Equal(10, dataset.Test.ClassCount);
    }

    [Fact]
    public void ReadCifar10_LengthNotMultipleOfRecord_ThrowsNamingRecordSizeAndLength()
    {
        string path = _dir.Write("data_batch_1.bin", [.. RedRecord(1), 0, 0, 0]);

        var ex = Assert.Throws<DatasetFormatException>(() => CifarBinaryReader.ReadCifar10([path]));

        Assert.Contains("data_batch_1.bin", ex.Message);
        Assert.Contains("length 3076 bytes is not a multiple of the 3073-byte CIFAR-10 record size", ex.Message);
    }

    [Fact]
    public void ReadCifar10_LabelOutOfRange_ThrowsNamingRecordAndLabel()
    {
        string path = _dir.Write("test_batch.bin", [.. RedRecord(1), .. RedRecord(10)]);

        var ex = Assert.Throws<DatasetFormatException>(() => CifarBinaryReader.ReadCifar10([path]));

        Assert.Contains("test_batch.bin", ex.Message);
        Assert.Contains("record 1 has label 10, outside 0..9", ex.Message);
    }

    [Fact]
    public void ReadCifar10Directory_MissingBatches_ThrowsListingThem()
    {
        _dir.Write("data_batch_1.bin", RedRecord(1));

        var ex = Assert.Throws<DatasetFormatException>(() => CifarBinaryReader.ReadCifar10Directory(_dir.Root));

        Assert.Contains(_dir.Root, ex.Message);
        Assert.Contains("data_batch_5.bin[.gz], test_batch.bin[.gz]", ex.Message);
    }

    [Fact]
    public void ReadCifar100Directory_FineLabels_UsesFineLabelAndPlaneOrder()
    {
        _dir.Write("train.bin", [.. Cifar100Record(3, 42, PatternPixel), .. Cifar100Record(19, 99, PatternPixel)]);
        _dir.Write("test.bin.gz", Gzip(Cifar100Record(0, 7, (c, _) => c == 0 ? (byte)255 : (byte)0)));

        var dataset = CifarBinaryReader.ReadCifar100Directory(_dir.Root);

        Assert.Equal([42, 99], dataset.Train.Labels);
        Assert.Equal(100, dataset.Train.ClassCount);
        Assert.Equal("42", dataset.Train.ClassNames[42]);
        Assert.Equal(Enumerable.Range(0, 3072).Select(i => PatternPixel(i / 1024, i % 1024) / 255f), dataset.Train.Pixels[..3072]);
        Assert.Equal([7], dataset.Test.Labels);
        Assert.All(dataset.Test.Pixels[..1024], v => Assert.Equal(1f, v));
        Assert.All(dataset.Test.Pixels[1024..], v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ReadCifar100Directory_FineLabelNamesFile_UsesNames()
    {
        _dir.Write("train.bin", Cifar100Record(3, 1, PatternPixel));
        _dir.Write("test.bin", Cifar100Record(3, 2, PatternPixel));
        _dir.Write("fine_label_names.txt", System.Text.Encoding.UTF8.GetBytes(string.Join("\n", Enumerable.Range(0, 100).Select(i => $"fine{i}"))));

        var dataset = CifarBinaryReader.ReadCifar100Directory(_dir.Root);

        Assert.Equal("fine1", dataset.Train.ClassNames[dataset.Train.Labels[0]]);
    }

    [Fact]
    public void ReadCifar100_FineLabelOutOfRange_ThrowsNamingRecordAndLabel()
    {
        string path = _dir.Write("train.bin", Cifar100Record(3, 100, PatternPixel));

        var ex = Assert.Throws<DatasetFormatException>(() => CifarBinaryReader.ReadCifar100(path));

        Assert.Contains("train.bin", ex.Message);
        Assert.Contains("record 0 has label 100, outside 0..99", ex.Message);
    }

    [Fact]
    public void ReadCifar100_Cifar10File_ThrowsNamingRecordSize()
    {
        string path = _dir.Write("train.bin", RedRecord(1));

        var ex = Assert.Throws<DatasetFormatException>(() => CifarBinaryReader.ReadCifar100(path));

        Assert.Contains("train.bin", ex.Message);
        Assert.Contains("3074-byte CIFAR-100 record size", ex.Message);
    }

    [Fact]
    public void ReadCifar10_FileLongerThanTheBudget_IsRefusedWithoutReadingItWhole()
    {
        // 200 records (615 KB); the budget holds two images. The reader stops at the third.
        string path = _dir.Write("data_batch_1.bin", [.. Enumerable.Range(0, 200).SelectMany(i => RedRecord((byte)(i % 10)))]);
        long before = GC.GetAllocatedBytesForCurrentThread();

        var ex = Assert.Throws<Distill.Core.Errors.LimitExceededException>(() =>
            CifarBinaryReader.ReadCifar10([path], budget: new DatasetReadBudget(2 * 3072, "test:limit")));

        Assert.Equal("test:limit", ex.Subject);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < new FileInfo(path).Length / 2,
            "the file was read whole before the budget was checked");
    }
}
