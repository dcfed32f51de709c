using System.Data.Common;
using Distill.DistillerService.Configuration;
using Distill.Protos.Distiller.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Runs and their event histories: one SQLite file under the data folder (WAL journal, so a
/// killed process loses at most the statement in flight), or a PostgreSQL database when
/// <see cref="DistillerOptions.PostgresConnectionString"/> is set. Rows hold protobuf
/// messages, the API's own types, so both databases need only the plain SQL below.
/// </summary>
public sealed class RunStore : IDisposable
{
    private readonly DbDataSource _database;
    private readonly bool _sqlite;
    private readonly TimeProvider _time;
    private readonly Lock _append = new();

    public RunStore(IOptions<DistillerOptions> options, TimeProvider time)
    {
        _time = time;
        var folder = Path.GetFullPath(options.Value.DataFolder);
        Directory.CreateDirectory(folder);
        RunsFolder = Path.Combine(folder, "runs");
        var postgres = options.Value.PostgresConnectionString;
        _sqlite = string.IsNullOrEmpty(postgres);
        var file = Path.Combine(folder, DatabaseFile);
        if (_sqlite) CheckSqliteFile(file);
        _database = _sqlite
            ? SqliteFactory.Instance.CreateDataSource(new SqliteConnectionStringBuilder { DataSource = file, Pooling = true }.ToString())
            : NpgsqlDataSource.Create(WithoutGssEncryption(postgres!));
        using var connection = Open();
        var (blob, integer) = _sqlite ? ("BLOB", "INTEGER") : ("BYTEA", "BIGINT");
        Execute(connection, (_sqlite ? "PRAGMA journal_mode = WAL;" : "") + $"""
            CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, created {integer} NOT NULL, run {blob} NOT NULL);
            CREATE TABLE IF NOT EXISTS events (run_id TEXT NOT NULL, sequence {integer} NOT NULL, event {blob} NOT NULL, PRIMARY KEY (run_id, sequence));
            """);
    }

    /// <summary>The SQLite file in the data folder.</summary>
    public const string DatabaseFile = "distiller.db";

    /// <summary>
    /// Opens the SQLite file once before anything writes to it and refuses, naming the file,
    /// one that is not a sound database or that another process holds locked. The file is
    /// left exactly as it is: never replaced by a new, empty store, never deleted.
    /// </summary>
    private static void CheckSqliteFile(string file)
    {
        try
        {
            // A short busy wait: a lock held longer than this is another process's, not a passing writer's.
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, DefaultTimeout = 5, Pooling = false }.ToString());
            connection.Open();
            using var command = connection.CreateCommand();
            // Reads every page: garbage answers "file is not a database", damage a list of problems.
            command.CommandText = "PRAGMA quick_check";
            if (command.ExecuteScalar() is var result && !Equals(result, "ok"))
                throw new RunStoreUnavailableException(file, $"it fails SQLite's integrity check ({result})");
            // The write lock, taken and given back: another process holding the file answers busy.
            command.CommandText = "BEGIN IMMEDIATE; ROLLBACK;";
            command.ExecuteNonQuery();
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 5 or 6)  // SQLITE_BUSY, SQLITE_LOCKED
        {
            throw new RunStoreUnavailableException(file, $"another process holds it locked ({e.Message}); stop that process or give this one its own data folder", e);
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 11 or 26)  // SQLITE_CORRUPT, SQLITE_NOTADB
        {
            throw new RunStoreUnavailableException(file, $"it is not a sound SQLite database ({e.Message}); restore it from a backup, or move it away to start with an empty store", e);
        }
        catch (SqliteException e)
        {
            throw new RunStoreUnavailableException(file, e.Message, e);
        }
    }

    /// <summary>
    /// GSS encryption off unless asked for: trying it loads Kerberos, which slim images lack
    /// (it then prints an error on every start); TLS is set with SSL Mode as usual.
    /// </summary>
    private static string WithoutGssEncryption(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!connectionString.Contains("gss", StringComparison.OrdinalIgnoreCase)) builder.GssEncryptionMode = GssEncryptionMode.Disable;
        return builder.ToString();
    }

    public string RunsFolder { get; }

    public string RunFolder(string id) => Path.Combine(RunsFolder, id);

    /// <summary>Inserts or replaces a run (keyed by its name's id) and stamps its update_time.</summary>
    public void Save(Run run)
    {
        run.UpdateTime = Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO runs (id, created, run) VALUES (@id, @created, @run) ON CONFLICT(id) DO UPDATE SET run = excluded.run";
        command.AddParameter("@id", RunNames.Id(run.Name));
        command.AddParameter("@created", run.CreateTime.ToDateTimeOffset().ToUnixTimeMilliseconds());
        command.AddParameter("@run", run.ToByteArray());
        command.ExecuteNonQuery();
    }

    public Run? Get(string id)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT run FROM runs WHERE id = @id";
        command.AddParameter("@id", id);
        return command.ExecuteScalar() is byte[] bytes ? Run.Parser.ParseFrom(bytes) : null;
    }

    public IReadOnlyList<Run> List()
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT run FROM runs ORDER BY created";
        using var reader = command.ExecuteReader();
        var runs = new List<Run>();
        while (reader.Read()) runs.Add(Run.Parser.ParseFrom((byte[])reader[0]));
        return runs;
    }

    /// <summary>The run a StartRun with this request_id created, if any.</summary>
    public Run? FindByRequestId(string requestId) => List().FirstOrDefault(r => r.RequestId == requestId);

    /// <summary>The sequence number of the run's latest event; 0 when it has none.</summary>
    public long LastSequence(string runId)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE run_id = @id";
        command.AddParameter("@id", runId);
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Delete(string id)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        foreach (var sql in new[] { "DELETE FROM events WHERE run_id = @id", "DELETE FROM runs WHERE id = @id" })
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            command.AddParameter("@id", id);
            command.ExecuteNonQuery();
        }
        transaction.Commit();
    }

    /// <summary>Appends an event with the next sequence number of its run and returns it.</summary>
    public RunEvent Append(string runId, RunEvent runEvent)
    {
        lock (_append) return AppendLocked(runId, runEvent);
    }

    private RunEvent AppendLocked(string runId, RunEvent runEvent)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        using (var next = connection.CreateCommand())
        {
            next.CommandText = "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE run_id = @id";
            next.AddParameter("@id", runId);
            runEvent.Sequence = (long)next.ExecuteScalar()!;
        }
        runEvent.Time ??= Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        using (var insert = connection.CreateCommand())
        {
            insert.CommandText = "INSERT INTO events (run_id, sequence, event) VALUES (@id, @sequence, @event)";
            insert.AddParameter("@id", runId);
            insert.AddParameter("@sequence", runEvent.Sequence);
            insert.AddParameter("@event", runEvent.ToByteArray());
            insert.ExecuteNonQuery();
        }
        transaction.Commit();
        return runEvent;
    }

    /// <summary>The run's events after <paramref name="afterSequence"/>, in order, at most <paramref name="limit"/>.</summary>
    public IReadOnlyList<RunEvent> Events(string runId, long afterSequence, int limit = int.MaxValue)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT event FROM events WHERE run_id = @id AND sequence > @after ORDER BY sequence LIMIT @limit";
        command.AddParameter("@id", runId);
        command.AddParameter("@after", afterSequence);
        command.AddParameter("@limit", limit);
        using var reader = command.ExecuteReader();
        var events = new List<RunEvent>();
        while (reader.Read()) events.Add(RunEvent.Parser.ParseFrom((byte[])reader[0]));
        return events;
    }

    private DbConnection Open()
    {
        var connection = _database.OpenConnection();
        // WAL with NORMAL sync survives a killed process (what crash recovery needs) without
        // an fsync per progress event; checkpoints themselves are flushed files.
        if (_sqlite) Execute(connection, "PRAGMA synchronous = NORMAL;");
        return connection;
    }

    private static void Execute(DbConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    public void Dispose() => _database.Dispose();
}

/// <summary>Named parameters for any ADO.NET provider; both databases read @name.</summary>
internal static class DbCommandParameters
{
    public static void AddParameter(this DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }
}
