using Distill.Core.Errors;

namespace Distill.Core.Data;

/// <summary>
/// How many pixel values a dataset read may produce in all. Readers take each file's
/// share from the size its header (or its length on disk) declares, before reading or
/// decompressing the body, so an oversized or lying file is refused at once instead of
/// filling memory first.
/// </summary>
public sealed class DatasetReadBudget(long maxValues, string subject)
{
    private long _left = maxValues;

    /// <summary>No limit beyond what the runtime can hold: the command line reading its own files.</summary>
    public static DatasetReadBudget Unlimited => new(long.MaxValue, "");

    /// <summary>The setting that sets the limit, named in the error.</summary>
    public string Subject { get; } = subject;

    public long MaxValues { get; } = maxValues;

    /// <summary>Values not taken yet.</summary>
    public long Left => _left;

    /// <summary>Takes <paramref name="values"/> for <paramref name="path"/>; throws <see cref="LimitExceededException"/> when they do not fit.</summary>
    public void Take(string path, long values, string what)
    {
        if (values > _left) throw Exceeded(path, values, what);
        _left -= values;
    }

    public LimitExceededException Exceeded(string path, long values, string what) =>
        new(ErrorReasons.DatasetBudgetExceeded, Subject,
            $"{Path.GetFileName(path)}: {what} ({values} values) exceed{(_left < MaxValues ? " what is left of" : "")} the limit of {MaxValues} values ({Subject}); nothing was loaded");
}
