using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace Distill.Core.Data;

/// <summary>
/// Reads the image-folder layout: root/train/&lt;class&gt;/*.png|jpg|jpeg and
/// root/test/&lt;class&gt;/*. Class indices follow the ordinally sorted train folder
/// names and files are taken in name order, so two reads give identical arrays.
/// </summary>
public static class ImageFolderReader
{
    public const string TrainFolder = "train";
    public const string TestFolder = "test";

    private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Reads root/train and root/test into one dataset with shared classes, size and channel count.</summary>
    public static ImageDataset Read(string root, string name, DatasetReadBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        DatasetFile.RequireDirectory(root, "image-folder dataset");
        string trainDir = Path.Combine(root, TrainFolder);
        string testDir = Path.Combine(root, TestFolder);
        var absent = new[] { TrainFolder, TestFolder }.Where(split => !Directory.Exists(Path.Combine(root, split))).ToList();
        if (absent.Count > 0)
            throw new DatasetFormatException(root,
                $"missing {string.Join(" and ", absent.Select(split => split + "/"))} subfolder; an image-folder dataset needs train/<class>/*.png|jpg|jpeg and test/<class>/*");

        var classNames = ClassFolders(trainDir);
        if (classNames.Count == 0)
            throw new DatasetFormatException(trainDir, "has no class subfolders; expected train/<class>/*.png|jpg|jpeg");
        RequireClassFolders(testDir, classNames, $"the class folders of {trainDir}");

        var train = ListImages(trainDir, classNames);
        var test = ListImages(testDir, classNames);
        var all = train.Files.Concat(test.Files).ToArray();
        var shape = Probe(all);
        // Headers only so far: the decoded pixels are counted before any is decoded.
        (budget ?? DatasetReadBudget.Unlimited).Take(root, (long)all.Length * shape.Channels * shape.Height * shape.Width,
            $"{all.Length} images of {shape.Channels}x{shape.Height}x{shape.Width}");
        var trainImages = Decode(train, shape, classNames, 0);
        var testImages = Decode(test, shape, classNames, train.Files.Count);
        return new ImageDataset(name, trainImages, testImages);
    }

    /// <summary>
    /// Reads one split folder of class subfolders. Without <paramref name="classNames"/> the
    /// sorted subfolder names are the classes; with them, the subfolders must match exactly.
    /// </summary>
    public static LabeledImages ReadSplit(string splitDir, IReadOnlyList<string>? classNames)
    {
        ArgumentException.ThrowIfNullOrEmpty(splitDir);
        DatasetFile.RequireDirectory(splitDir, "image-folder split");
        if (classNames is null)
        {
            classNames = ClassFolders(splitDir);
            if (classNames.Count == 0)
                throw new DatasetFormatException(splitDir, "has no class subfolders; expected <class>/*.png|jpg|jpeg");
        }
        else
        {
            RequireClassFolders(splitDir, classNames, "the given class names");
        }
        var split = ListImages(splitDir, classNames);
        var shape = Probe(split.Files.ToArray());
        return Decode(split, shape, classNames, 0);
    }

    private sealed record SplitFiles(List<string> Files, List<int> Labels);

    private sealed record ImageShape(int Channels, int Height, int Width, byte[][] Encoded);

    private static List<string> ClassFolders(string splitDir) =>
        Directory.EnumerateDirectories(splitDir)
            .Select(Path.GetFileName)
            // Hidden folders such as .ipynb_checkpoints would otherwise become bogus classes.
            .Where(folder => !string.IsNullOrEmpty(folder) && !folder.StartsWith('.'))
            .Select(folder => folder!)
            .Order(StringComparer.Ordinal)
            .ToList();

    private static void RequireClassFolders(string splitDir, IReadOnlyList<string> classNames, string expectedFrom)
    {
        var present = ClassFolders(splitDir);
        var missing = classNames.Except(present, StringComparer.Ordinal).ToList();
        var unexpected = present.Except(classNames, StringComparer.Ordinal).ToList();
        if (missing.Count == 0 && unexpected.Count == 0) return;
        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"missing class folders {string.Join(", ", missing)}");
        if (unexpected.Count > 0) problems.Add($"unexpected class folders {string.Join(", ", unexpected)}");
        throw new DatasetFormatException(splitDir, $"class folders do not match {expectedFrom}: {string.Join("; ", problems)}");
    }

    private static SplitFiles ListImages(string splitDir, IReadOnlyList<string> classNames)
    {
        var files = new List<string>();
        var labels = new List<int>();
        for (int label = 0; label < classNames.Count; label++)
        {
            var classFiles = Directory.EnumerateFiles(Path.Combine(splitDir, classNames[label]))
                .Where(file => ImageExtensions.Contains(Path.GetExtension(file), StringComparer.OrdinalIgnoreCase))
                .Order(StringComparer.Ordinal);
            foreach (string file in classFiles)
            {
                files.Add(file);
                labels.Add(label);
            }
        }
        if (files.Count == 0)
            throw new DatasetFormatException(splitDir, "contains no .png, .jpg or .jpeg images in its class folders");
        return new SplitFiles(files, labels);
    }

    /// <summary>
    /// Reads every file and its header (no pixel decode) to settle the common size and
    /// channel count before the output is allocated; keeps the encoded bytes for <see cref="Decode"/>.
    /// </summary>
    private static ImageShape Probe(string[] files)
    {
        var encoded = new byte[files.Length][];
        var sizes = new (int Width, int Height, bool Gray)[files.Length];
        var failures = new Exception?[files.Length];
        Parallel.For(0, files.Length, i =>
        {
            try
            {
                encoded[i] = File.ReadAllBytes(files[i]);
                using var data = SKData.CreateCopy(encoded[i]);
                using var codec = SKCodec.Create(data);
                if (codec is null)
                {
                    failures[i] = new DatasetFormatException(files[i], "could not be decoded as a PNG or JPEG image");
                    return;
                }
                sizes[i] = (codec.Info.Width, codec.Info.Height, codec.Info.ColorType == SKColorType.Gray8);
            }
            catch (Exception ex)
            {
                failures[i] = ex;
            }
        });

        // Checked in file order after the parallel pass so the reported file does not depend on thread timing.
        var (width, height, _) = sizes[0];
        for (int i = 0; i < files.Length; i++)
        {
            if (failures[i] is { } failure)
                ExceptionDispatchInfo.Throw(failure);
            if (sizes[i].Width != width || sizes[i].Height != height)
                throw new DatasetFormatException(files[i],
                    $"is {sizes[i].Width}x{sizes[i].Height} pixels but {files[0]} is {width}x{height}; all images must have the same size");
        }
        int channels = sizes.All(size => size.Gray) ? 1 : 3;
        return new ImageShape(channels, height, width, encoded);
    }

    private static LabeledImages Decode(SplitFiles split, ImageShape shape, IReadOnlyList<string> classNames, int encodedOffset)
    {
        int count = split.Files.Count;
        int plane = shape.Height * shape.Width;
        int featureCount = shape.Channels * plane;
        var pixels = new float[(long)count * featureCount];
        var failures = new Exception?[count];
        // Gray8 when every image is grayscale; otherwise RGBA, unpremultiplied so transparent pixels keep their RGB.
        var info = shape.Channels == 1
            ? new SKImageInfo(shape.Width, shape.Height, SKColorType.Gray8, SKAlphaType.Opaque)
            : new SKImageInfo(shape.Width, shape.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);

        Parallel.For(0, count, () => new byte[info.BytesSize], (i, _, buffer) =>
        {
            try
            {
                using var data = SKData.CreateCopy(shape.Encoded[encodedOffset + i]);
                using var codec = SKCodec.Create(data);
                var handle = GCHandle.Alloc(buffer, GCHandleType.Pinned);
                SKCodecResult result;
                try
                {
                    result = codec.GetPixels(info, handle.AddrOfPinnedObject());
                }
                finally
                {
                    handle.Free();
                }
                if (result != SKCodecResult.Success)
                {
                    failures[i] = new DatasetFormatException(split.Files[i], $"could not be decoded ({result})");
                    return buffer;
                }
                var destination = pixels.AsSpan(i * featureCount, featureCount);
                if (shape.Channels == 1)
                {
                    DatasetFile.ToUnitInterval(buffer.AsSpan(0, plane), destination);
                }
                else
                {
                    for (int p = 0; p < plane; p++)
                    {
                        destination[p] = DatasetFile.ToUnit(buffer[4 * p]);
                        destination[plane + p] = DatasetFile.ToUnit(buffer[4 * p + 1]);
                        destination[2 * plane + p] = DatasetFile.ToUnit(buffer[4 * p + 2]);
                    }
                }
            }
            catch (Exception ex)
            {
                failures[i] = ex;
            }
            return buffer;
        }, _ => { });

        foreach (var failure in failures)
            if (failure is not null)
                ExceptionDispatchInfo.Throw(failure);
        return new LabeledImages(pixels, split.Labels.ToArray(), shape.Channels, shape.Height, shape.Width, classNames);
    }
}
