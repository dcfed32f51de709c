using Distill.DistillerService.Configuration;
using Npgsql;

namespace Distill.DistillerService.Tests;

/// <summary>
/// A fresh place for a run store: a SQLite file in a temp folder, or, when
/// DISTILL_TEST_POSTGRES holds a connection string (./test.sh --postgres starts a throwaway
/// server), a new schema on that PostgreSQL server, dropped again on dispose.
/// </summary>
public sealed class StoreDatabase : IDisposable
{
    public const string Sqlite = "sqlite", Postgres = "postgres";
    private static readonly string? Server = Environment.GetEnvironmentVariable("DISTILL_TEST_POSTGRES");
    // The test's own connections, like the store's, do without Kerberos (see RunStore).
    private static string Admin => new NpgsqlConnectionStringBuilder(Server) { GssEncryptionMode = GssEncryptionMode.Disable }.ToString();
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("distill-store-");
    private readonly string? _schema;

    public StoreDatabase(string kind)
    {
        Skip.If(kind == Postgres && string.IsNullOrEmpty(Server), "DISTILL_TEST_POSTGRES is not set (./test.sh --postgres provides a server)");
        if (kind == Postgres)
        {
            _schema = $"distill_test_{Guid.NewGuid():N}";
            Execute($"CREATE SCHEMA {_schema}");
            ConnectionString = new NpgsqlConnectionStringBuilder(Server) { SearchPath = _schema }.ToString();
        }
    }

    public static TheoryData<string> Kinds => [Sqlite, Postgres];

    public string? ConnectionString { get; }

    public string DataFolder => _folder.FullName;

    public DistillerOptions Options => new() { DataFolder = DataFolder, PostgresConnectionString = ConnectionString };

    /// <summary>The distiller's settings that select this database.</summary>
    public Dictionary<string, string?> Settings => ConnectionString is null ? [] : new() { ["Distiller:PostgresConnectionString"] = ConnectionString };

    public long Count(string sql)
    {
        using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(Admin) { SearchPath = _schema }.ToString());
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(command.ExecuteScalar());
    }

    private static void Execute(string sql)
    {
        using var connection = new NpgsqlConnection(Admin);
        connection.Open();
        using var command = new NpgsqlCommand(sql, connection);
        command.ExecuteNonQuery();
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        if (_schema is not null) Execute($"DROP SCHEMA {_schema} CASCADE");
        _folder.Delete(recursive: true);
    }
}
