namespace Distill.Core.Data;

/// <summary>
/// A dataset file or folder that does not hold what its format promises. The message
/// always starts with the path, so a user with many files can tell which one is broken.
/// Derives from <see cref="IOException"/> because <see cref="InvalidDataException"/> is
/// sealed; one <c>catch (IOException)</c> then also covers missing files and folders.
/// </summary>
public sealed class DatasetFormatException : IOException
{
    public DatasetFormatException(string path, string problem)
        : this(path, problem, null)
    {
    }

    public DatasetFormatException(string path, string problem, Exception? innerException)
        : base($"{path}: {problem}", innerException)
    {
        FilePath = path;
        Problem = problem;
    }

    /// <summary>The file or directory at fault.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong with it, without the path.</summary>
    public string Problem { get; }
}
