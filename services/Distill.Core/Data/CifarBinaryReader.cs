using System.Text;

namespace Distill.Core.Data;

/// <summary>
/// Reads the "binary version" of CIFAR-10 and CIFAR-100: fixed-size records of label
/// byte(s) followed by 3072 pixel bytes, the red, green and blue 32x32 planes in turn
/// (which is already NCHW order). Files may be gzipped.
/// </summary>
public static class CifarBinaryReader
{
    public const int ImageSide = 32;
    public const int ImageChannels = 3;
    public const int ImageBytes = ImageChannels * ImageSide * ImageSide;
    public const int Cifar10RecordSize = 1 + ImageBytes;
    public const int Cifar100RecordSize = 2 + ImageBytes;

    public static IReadOnlyList<string> Cifar10ClassNames { get; } =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    public static IReadOnlyList<string> Cifar10TrainFiles { get; } =
        ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];

    public const string Cifar10TestFile = "test_batch.bin";
    public const string Cifar10MetaFile = "batches.meta.txt";
    public const string Cifar100TrainFile = "train.bin";
    public const string Cifar100TestFile = "test.bin";
    public const string Cifar100MetaFile = "fine_label_names.txt";

    private const int Cifar100CoarseClasses = 20;

    /// <summary>Reads data_batch_1..5.bin and test_batch.bin (each optionally .gz); the dataset is named after the directory.</summary>
    public static ImageDataset ReadCifar10Directory(string dir, DatasetReadBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        DatasetFile.RequireDirectory(dir, "CIFAR-10 dataset");
        string[] required = [.. Cifar10TrainFiles, Cifar10TestFile];
        string[] paths = FindAll(dir, required, "CIFAR-10");
        var classNames = ReadClassNames(dir, Cifar10MetaFile, 10) ?? Cifar10ClassNames;
        var train = ReadCifar10(paths[..^1], classNames, budget);
        var test = ReadCifar10([paths[^1]], classNames, budget);
        return new ImageDataset(DatasetFile.DirectoryName(dir), train, test);
    }

    /// <summary>Reads train.bin and test.bin (each optionally .gz) with fine labels; the dataset is named after the directory.</summary>
    public static ImageDataset ReadCifar100Directory(string dir, DatasetReadBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        DatasetFile.RequireDirectory(dir, "CIFAR-100 dataset");
        string[] paths = FindAll(dir, [Cifar100TrainFile, Cifar100TestFile], "CIFAR-100");
        var classNames = ReadClassNames(dir, Cifar100MetaFile, 100) ?? DatasetFile.NumberNames(100);
        var train = ReadCifar100(paths[0], classNames, budget);
        var test = ReadCifar100(paths[1], classNames, budget);
        return new ImageDataset(DatasetFile.DirectoryName(dir), train, test);
    }

    /// <summary>Reads and concatenates CIFAR-10 batch files, in the order given.</summary>
    public static LabeledImages ReadCifar10(IReadOnlyList<string> batchPaths, IReadOnlyList<string>? classNames = null, DatasetReadBudget? budget = null) =>
        ReadRecords(batchPaths, "CIFAR-10", Cifar10RecordSize, classNames ?? Cifar10ClassNames, budget);

    /// <summary>Reads a CIFAR-100 file, keeping the fine label of each record.</summary>
    public static LabeledImages ReadCifar100(string path, IReadOnlyList<string>? classNames = null, DatasetReadBudget? budget = null) =>
        ReadRecords([path], "CIFAR-100", Cifar100RecordSize, classNames ?? DatasetFile.NumberNames(100), budget);

    private static LabeledImages ReadRecords(IReadOnlyList<string> paths, string format, int recordSize, IReadOnlyList<string> classNames,
        DatasetReadBudget? budget = null)
    {
        budget ??= DatasetReadBudget.Unlimited;
        ArgumentNullException.ThrowIfNull(paths);
        if (paths.Count == 0)
            throw new ArgumentException("at least one file is required", nameof(paths));
        int labelOffset = recordSize - ImageBytes - 1;

        var files = new byte[paths.Count][];
        int total = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            // Whole records that the budget still allows: a longer file is refused before or while it is read.
            long cap = budget.Left >= Array.MaxLength / recordSize * (long)ImageBytes ? Array.MaxLength : budget.Left / ImageBytes * recordSize + recordSize - 1;
            var path = paths[f];
            byte[] bytes = DatasetFile.ReadAllBytes(path, cap, length => budget.Exceeded(path, length / recordSize * ImageBytes, $"{length / recordSize} or more {format} records"));
            if (bytes.Length == 0)
                throw new DatasetFormatException(paths[f], $"is empty; expected {format} records of {recordSize} bytes");
            if (bytes.Length % recordSize != 0)
                throw new DatasetFormatException(paths[f],
                    $"length {bytes.Length} bytes is not a multiple of the {recordSize}-byte {format} record size ({bytes.Length / recordSize} whole records and {bytes.Length % recordSize} bytes left over)");
            int records = bytes.Length / recordSize;
            budget.Take(path, (long)records * ImageBytes, $"{records} {format} records");
            ValidateLabels(paths[f], bytes, records, recordSize, labelOffset, classNames.Count);
            files[f] = bytes;
            total = checked(total + records);
        }

        var labels = new int[total];
        var pixels = new float[(long)total * ImageBytes];
        int first = 0;
        foreach (byte[] bytes in files)
        {
            int records = bytes.Length / recordSize;
            int start = first;
            Parallel.For(0, records, r =>
            {
                int source = r * recordSize;
                labels[start + r] = bytes[source + labelOffset];
                DatasetFile.ToUnitInterval(bytes.AsSpan(source + labelOffset + 1, ImageBytes), pixels.AsSpan((start + r) * ImageBytes, ImageBytes));
            });
            first += records;
        }
        return new LabeledImages(pixels, labels, ImageChannels, ImageSide, ImageSide, classNames);
    }

    private static void ValidateLabels(string path, byte[] bytes, int records, int recordSize, int labelOffset, int classCount)
    {
        for (int r = 0; r < records; r++)
        {
            // CIFAR-100 records start with a coarse label; a value past 19 there means this is not a CIFAR-100 file.
            if (labelOffset == 1 && bytes[r * recordSize] >= Cifar100CoarseClasses)
                throw new DatasetFormatException(path, $"record {r} has coarse label {bytes[r * recordSize]}, outside 0..{Cifar100CoarseClasses - 1}");
            int label = bytes[r * recordSize + labelOffset];
            if (label >= classCount)
                throw new DatasetFormatException(path, $"record {r} has label {label}, outside 0..{classCount - 1} ({classCount} classes)");
        }
    }

    private static string[] FindAll(string dir, string[] required, string format)
    {
        string?[] found = required.Select(file => DatasetFile.FindPlainOrGzip(dir, file)).ToArray();
        var missing = required.Where((_, i) => found[i] is null).Select(file => file + "[.gz]").ToList();
        if (missing.Count > 0)
            throw new DatasetFormatException(dir,
                $"missing {format} files: {string.Join(", ", missing)} (a {format} binary dataset needs all of {string.Join(", ", required.Select(f => f + "[.gz]"))})");
        return found!;
    }

    /// <summary>Class names from an optional one-name-per-line file; null when the file is absent.</summary>
    private static IReadOnlyList<string>? ReadClassNames(string dir, string fileName, int expectedCount)
    {
        string? path = DatasetFile.FindPlainOrGzip(dir, fileName);
        if (path is null) return null;
        // The official files end with blank lines, so only non-empty lines count.
        var names = Encoding.UTF8.GetString(DatasetFile.ReadAllBytes(path))
            .Split('\n')
            .Select(line => line.Trim())
            .Where(line => line.Length > 0)
            .ToArray();
        if (names.Length != expectedCount)
            throw new DatasetFormatException(path, $"lists {names.Length} class names, expected {expectedCount} (one per line)");
        return names;
    }
}
