using System.Security.Cryptography;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Runs;
using Microsoft.Data.Sqlite;

namespace Distill.DistillerService.Tests.Faults;

/// <summary>
/// A distiller started on a SQLite file it cannot use refuses to start, naming the file, and
/// leaves the file as it found it: no new empty store in its place, nothing deleted.
/// </summary>
public sealed class RunStoreStartupTests : IDisposable
{
    private readonly ProcessCluster _cluster = new();
    private string Database => Path.Combine(_cluster.DataFolder, RunStore.DatabaseFile);

    // No kernel service is reached before the store opens; the address only satisfies the settings.
    private Task<(int ExitCode, string Output)> StartDistillerToExitAsync() =>
        ServiceProcess.RunToExitAsync("Distill.DistillerService", TimeSpan.FromSeconds(60), _cluster.DistillerArguments("http://127.0.0.1:1"));

    [Fact]
    public async Task Start_OnAGarbageDatabaseFile_RefusesNamingTheFileAndLeavesItAlone()
    {
        Directory.CreateDirectory(_cluster.DataFolder);
        var garbage = new byte[64 * 1024];
        new Random(5).NextBytes(garbage);
        File.WriteAllBytes(Database, garbage);

        var (exitCode, output) = await StartDistillerToExitAsync();

        Assert.NotEqual(0, exitCode);
        Assert.Contains($"run store {Database} cannot be used: it is not a sound SQLite database", output);
        Assert.Equal(garbage, File.ReadAllBytes(Database));
        Assert.Equal([Database], Directory.GetFiles(_cluster.DataFolder));
    }

    [Fact]
    public async Task Start_WhileAnotherProcessHoldsTheDatabaseLocked_RefusesNamingTheFileThenStartsOnceItIsFree()
    {
        using (new RunStore(Microsoft.Extensions.Options.Options.Create(new DistillerOptions { DataFolder = _cluster.DataFolder }), TimeProvider.System)) { }
        SqliteConnection.ClearAllPools();  // the store's pooled connections would share the lock below
        var before = SHA256.HashData(File.ReadAllBytes(Database));
        (int ExitCode, string Output) refused;
        // This test process is the other process: SQLite's locks are per process.
        using (var holder = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Database, Pooling = false }.ToString()))
        {
            holder.Open();
            using var exclusive = holder.CreateCommand();
            exclusive.CommandText = "PRAGMA locking_mode = EXCLUSIVE";
            exclusive.ExecuteNonQuery();
            // A write left pending holds the file's exclusive lock until it is rolled back.
            using var pending = holder.BeginTransaction();
            using var write = holder.CreateCommand();
            write.Transaction = pending;
            write.CommandText = "CREATE TABLE lock_holder (x INTEGER)";
            write.ExecuteNonQuery();
            refused = await StartDistillerToExitAsync();
        }

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains($"run store {Database} cannot be used: another process holds it locked", refused.Output);
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(Database)));
        await using var started = await ServiceProcess.StartAsync("Distill.DistillerService", ServiceProcess.FreePort(), _cluster.DistillerArguments("http://127.0.0.1:1"));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        _cluster.Dispose();
    }
}
