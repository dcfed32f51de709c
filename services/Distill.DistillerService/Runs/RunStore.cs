using Distill.DistillerService.Configuration;
using Distill.Protos.Distiller.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Runs and their event histories in one SQLite file (WAL journal, so a killed process
/// loses at most the statement in flight). Rows hold protobuf messages: the API's own types.
/// </summary>
public sealed class RunStore
{
    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private readonly Lock _append = new();

    public RunStore(IOptions<DistillerOptions> options, TimeProvider time)
    {
        _time = time;
        var folder = Path.GetFullPath(options.Value.DataFolder);
        Directory.CreateDirectory(folder);
        RunsFolder = Path.Combine(folder, "runs");
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path.Combine(folder, "distiller.db"), Pooling = true }.ToString();
        using var connection = Open();
        Execute(connection, """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, created INTEGER NOT NULL, run BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS events (run_id TEXT NOT NULL, sequence INTEGER NOT NULL, event BLOB NOT NULL, PRIMARY KEY (run_id, sequence));
            """);
    }

    public string RunsFolder { get; }

    public string RunFolder(string id) => Path.Combine(RunsFolder, id);

    public void Save(Run run)
    {
        run.Updated = Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO runs (id, created, run) VALUES ($id, $created, $run) ON CONFLICT(id) DO UPDATE SET run = excluded.run";
        command.Parameters.AddWithValue("$id", run.Id);
        command.Parameters.AddWithValue("$created", run.Created.ToDateTimeOffset().ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$run", run.ToByteArray());
        command.ExecuteNonQuery();
    }

    public Run? Get(string id)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT run FROM runs WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
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

    public void Delete(string id)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        foreach (var sql in new[] { "DELETE FROM events WHERE run_id = $id", "DELETE FROM runs WHERE id = $id" })
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            command.Parameters.AddWithValue("$id", id);
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
            next.CommandText = "SELECT COALESCE(MAX(sequence), 0) + 1 FROM events WHERE run_id = $id";
            next.Parameters.AddWithValue("$id", runId);
            runEvent.Sequence = (long)next.ExecuteScalar()!;
        }
        runEvent.Time ??= Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        using (var insert = connection.CreateCommand())
        {
            insert.CommandText = "INSERT INTO events (run_id, sequence, event) VALUES ($id, $sequence, $event)";
            insert.Parameters.AddWithValue("$id", runId);
            insert.Parameters.AddWithValue("$sequence", runEvent.Sequence);
            insert.Parameters.AddWithValue("$event", runEvent.ToByteArray());
            insert.ExecuteNonQuery();
        }
        transaction.Commit();
        return runEvent;
    }

    public IReadOnlyList<RunEvent> Events(string runId, long afterSequence)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT event FROM events WHERE run_id = $id AND sequence > $after ORDER BY sequence";
        command.Parameters.AddWithValue("$id", runId);
        command.Parameters.AddWithValue("$after", afterSequence);
        using var reader = command.ExecuteReader();
        var events = new List<RunEvent>();
        while (reader.Read()) events.Add(RunEvent.Parser.ParseFrom((byte[])reader[0]));
        return events;
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        // WAL with NORMAL sync survives a killed process (what crash recovery needs) without
        // an fsync per progress event; checkpoints themselves are flushed files.
        Execute(connection, "PRAGMA synchronous = NORMAL;");
        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
