using Microsoft.Data.Sqlite;

namespace Distill.DistillerService.Runs;

/// <summary>
/// The data folder's disk is full: a file write that ran out of space (ENOSPC) or SQLite's
/// SQLITE_FULL. A run that meets it stops FAILED, not PAUSED: nothing frees space on its own,
/// so the user frees it and resumes the run, which continues from its last good checkpoint.
/// </summary>
public static class DiskFull
{
    private const int NoSpaceErrno = 28, WindowsDiskFull = unchecked((int)0x80070070), SqliteFull = 13;

    public static bool Is(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is SqliteException { SqliteErrorCode: SqliteFull }) return true;
            if (e is IOException io && (io.HResult is NoSpaceErrno or WindowsDiskFull || io.Message.Contains("No space left on device", StringComparison.Ordinal)))
                return true;
        }
        return false;
    }

    public const string RunMessage =
        "no space left on device in the distiller's data folder; the run stopped and its last good checkpoint is kept: free space, then resume the run";
}
