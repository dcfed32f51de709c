using Distill.Core.Errors;
namespace Distill.Core.Data;

/// <summary>Loads a dataset directory in any supported layout, detecting the layout when none is named.</summary>
public static class DatasetLoader
{
    public const string IdxFormat = "idx";
    public const string Cifar10Format = "cifar10";
    public const string Cifar100Format = "cifar100";
    public const string FolderFormat = "folder";

    public static IReadOnlyList<string> Formats { get; } = [IdxFormat, Cifar10Format, Cifar100Format, FolderFormat];

    /// <summary>One line per layout, for error messages and command-line help.</summary>
    public static string SupportedLayouts { get; } = string.Join("; ",
        $"{IdxFormat}: {string.Join(", ", IdxReader.DirectoryFiles.Select(f => f + "[.gz]"))}",
        $"{Cifar10Format}: {string.Join(", ", CifarBinaryReader.Cifar10TrainFiles.Append(CifarBinaryReader.Cifar10TestFile).Select(f => f + "[.gz]"))}",
        $"{Cifar100Format}: {CifarBinaryReader.Cifar100TrainFile}[.gz], {CifarBinaryReader.Cifar100TestFile}[.gz]",
        $"{FolderFormat}: train/<class>/*.png|jpg|jpeg and test/<class>/*");

    /// <summary>
    /// Loads the dataset in directory <paramref name="path"/>, named after the directory.
    /// <paramref name="format"/> is one of <see cref="Formats"/>, or null to detect it.
    /// </summary>
    /// <paramref name="budget"/> bounds the pixel values read in all; each file's declared size is checked before its body is read.
    public static ImageDataset Load(string path, string? format = null, DatasetReadBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string? requested = format is null ? null : NormalizeFormat(path, format);
        DatasetFile.RequireDirectory(path, "dataset");
        string resolved = requested ?? DetectFormat(path)
            ?? throw new DatasetFormatException(path, $"could not detect the dataset layout; supported layouts are {SupportedLayouts}");

        string name = DatasetFile.DirectoryName(path);
        return resolved switch
        {
            IdxFormat => IdxReader.ReadDirectory(path, name, budget),
            Cifar10Format => CifarBinaryReader.ReadCifar10Directory(path, budget),
            Cifar100Format => CifarBinaryReader.ReadCifar100Directory(path, budget),
            _ => ImageFolderReader.Read(path, name, budget),
        };
    }

    /// <summary>The layout of an existing directory, or null when none matches.</summary>
    public static string? DetectFormat(string dir)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        // Any one IDX file is enough: the reader then names the missing ones, which helps more than "unknown layout".
        if (IdxReader.DirectoryFiles.Any(file => DatasetFile.FindPlainOrGzip(dir, file) is not null))
            return IdxFormat;
        if (DatasetFile.FindPlainOrGzip(dir, CifarBinaryReader.Cifar10TrainFiles[0]) is not null)
            return Cifar10Format;
        if (DatasetFile.FindPlainOrGzip(dir, CifarBinaryReader.Cifar100TrainFile) is not null
            && DatasetFile.FindPlainOrGzip(dir, CifarBinaryReader.Cifar100TestFile) is not null)
            return Cifar100Format;
        if (Directory.Exists(Path.Combine(dir, ImageFolderReader.TrainFolder))
            && Directory.Exists(Path.Combine(dir, ImageFolderReader.TestFolder)))
            return FolderFormat;
        return null;
    }

    private static string NormalizeFormat(string path, string format)
    {
        string normalized = format.Trim().ToLowerInvariant();
        if (Formats.Contains(normalized)) return normalized;
        throw new InvalidFieldException("format",
            $"unknown dataset format '{format}' for {Path.GetFileName(path)}; use one of {string.Join(", ", Formats)} or omit it to detect the layout ({SupportedLayouts})");
    }
}
