using System.Buffers.Binary;

namespace Distill.Core.Data;

/// <summary>
/// Reads the IDX format of MNIST, Fashion-MNIST and KMNIST: unsigned-byte image files
/// (magic 0x00000803, N x H x W) and label files (magic 0x00000801, N), gzipped or not.
/// </summary>
public static class IdxReader
{
    public const uint ImageMagic = 0x00000803;
    public const uint LabelMagic = 0x00000801;

    public const string TrainImagesFile = "train-images-idx3-ubyte";
    public const string TrainLabelsFile = "train-labels-idx1-ubyte";
    public const string TestImagesFile = "t10k-images-idx3-ubyte";
    public const string TestLabelsFile = "t10k-labels-idx1-ubyte";

    /// <summary>The four canonical file names (each may also carry a .gz suffix).</summary>
    public static IReadOnlyList<string> DirectoryFiles { get; } = [TrainImagesFile, TrainLabelsFile, TestImagesFile, TestLabelsFile];

    private const byte UnsignedByteType = 0x08;

    /// <summary>
    /// Reads one split from an image file and a label file; class names default to "0".."9".
    /// The images' declared size is taken from <paramref name="budget"/> before their body is read.
    /// </summary>
    public static LabeledImages Read(string imagesPath, string labelsPath, IReadOnlyList<string>? classNames = null, DatasetReadBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(imagesPath);
        ArgumentException.ThrowIfNullOrEmpty(labelsPath);
        classNames ??= DatasetFile.NumberNames(10);
        if (classNames.Count == 0)
            throw new ArgumentException("at least one class name is required", nameof(classNames));

        var (imageDims, imageBytes) = ReadFile(imagesPath, ImageMagic, "image", budget ?? DatasetReadBudget.Unlimited);
        int count = imageDims[0], height = imageDims[1], width = imageDims[2];
        if (height == 0 || width == 0)
            throw new DatasetFormatException(imagesPath, $"image size {height}x{width} is empty");

        var (labelDims, labelBytes) = ReadFile(labelsPath, LabelMagic, "label", DatasetReadBudget.Unlimited);
        int labelCount = labelDims[0];
        if (labelCount != count)
            throw new DatasetFormatException(labelsPath, $"has {labelCount} labels but {Path.GetFileName(imagesPath)} has {count} images");

        const int labelOffset = 8;
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            int label = labelBytes[labelOffset + i];
            if (label >= classNames.Count)
                throw new DatasetFormatException(labelsPath, $"label {label} at index {i} is outside 0..{classNames.Count - 1} ({classNames.Count} classes)");
            labels[i] = label;
        }

        const int imageOffset = 16;
        int pixelCount = checked(count * height * width);
        var pixels = new float[pixelCount];
        DatasetFile.ToUnitInterval(imageBytes, imageOffset, pixels, 0, pixelCount);
        return new LabeledImages(pixels, labels, 1, height, width, classNames);
    }

    /// <summary>
    /// Reads a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each optionally gzipped.
    /// </summary>
    public static ImageDataset ReadDirectory(string dir, string name, DatasetReadBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        DatasetFile.RequireDirectory(dir, "IDX dataset");
        string?[] found = DirectoryFiles.Select(file => DatasetFile.FindPlainOrGzip(dir, file)).ToArray();
        var missing = DirectoryFiles.Where((_, i) => found[i] is null).Select(file => file + "[.gz]").ToList();
        if (missing.Count > 0)
            throw new DatasetFormatException(dir,
                $"missing IDX files: {string.Join(", ", missing)} (an IDX dataset needs all of {string.Join(", ", DirectoryFiles.Select(f => f + "[.gz]"))})");

        budget ??= DatasetReadBudget.Unlimited;
        var train = Read(found[0]!, found[1]!, budget: budget);
        var test = Read(found[2]!, found[3]!, budget: budget);
        if (test.Height != train.Height || test.Width != train.Width)
            throw new DatasetFormatException(found[2]!, $"test images are {test.Height}x{test.Width} but the train images in {found[0]} are {train.Height}x{train.Width}");
        return new ImageDataset(name, train, test);
    }

    /// <summary>
    /// The header's dimensions and the whole file, read in that order: the header first (its
    /// magic checked and its declared size taken from <paramref name="budget"/>), then the body,
    /// never more than the header declares, so a lying header cannot fill memory.
    /// </summary>
    private static (int[] Dims, byte[] Bytes) ReadFile(string path, uint expectedMagic, string kind, DatasetReadBudget budget)
    {
        int dimensionCount = (int)(expectedMagic & 0xff);
        int headerLength = 4 + 4 * dimensionCount;
        byte[] header = DatasetFile.ReadPrefix(path, headerLength);
        if (header.Length < 4)
            throw new DatasetFormatException(path, $"truncated: {header.Length} bytes is too short for an IDX {kind} header ({headerLength} bytes)");

        uint magic = BinaryPrimitives.ReadUInt32BigEndian(header);
        if (magic >> 16 == 0 && header[2] != UnsignedByteType)
            throw new DatasetFormatException(path, $"data type 0x{header[2]:X2} is not supported; only unsigned byte (0x08) IDX files can be read");
        if (magic != expectedMagic)
            throw new DatasetFormatException(path, $"expected magic 0x{expectedMagic:X8} for an IDX {kind} file, found 0x{magic:X8}");
        if (header.Length < headerLength)
            throw new DatasetFormatException(path, $"truncated: expected a {headerLength}-byte IDX {kind} header, found {header.Length} bytes");

        var dims = new int[dimensionCount];
        // Int128 because a corrupt header can promise more than long can count.
        Int128 bodyLength = 1;
        for (int d = 0; d < dimensionCount; d++)
        {
            uint size = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4 + 4 * d));
            if (size > int.MaxValue)
                throw new DatasetFormatException(path, $"dimension {d} has implausible size {size}");
            dims[d] = (int)size;
            bodyLength *= size;
        }
        string promised = kind == "image" ? $"{dims[0]} images of {dims[1]}x{dims[2]}" : $"{dims[0]} labels";
        budget.Take(path, (long)Int128.Min(bodyLength, long.MaxValue), $"the header declares {promised}");
        if (bodyLength > Array.MaxLength - headerLength)
            throw new DatasetFormatException(path, $"the header promises {promised}, more than one file can hold");

        long expectedLength = (long)bodyLength + headerLength;
        byte[] bytes = DatasetFile.ReadAllBytes(path, expectedLength, length => new DatasetFormatException(path,
            $"has {(DatasetFile.IsGzipFile(path) ? "at least " : "")}{length - expectedLength} trailing bytes: the header promises {promised}, expected {expectedLength} bytes but the file has more"));
        if (bytes.Length < expectedLength)
            throw new DatasetFormatException(path, $"truncated: the header promises {promised}, expected {expectedLength} bytes but the file has {bytes.Length}");
        return (dims, bytes);
    }
}
