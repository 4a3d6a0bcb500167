using Microsoft.Data.Sqlite;

namespace Tenantry.Samples.Tests;

/// <summary>Where the notes sample and the tenant-context test material are, and its migrations applied as Tenantry would.</summary>
internal static class NotesSample
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Folder => Path.Combine(RepositoryRoot, "samples", "notes-py");

    /// <summary>The test vectors, JWKS and keys of docs/tenant-context.md, as the Tenantry.AspNetCore tests hold them.</summary>
    public static string ContextResource(string name) => Path.Combine(RepositoryRoot, "tests", "Tenantry.AspNetCore.Tests", "Resources", name);

    public static string MigrationsFolder(string release) => Path.Combine(Folder, "releases", release, "migrations");

    /// <summary>The release's migration files, in their numbered order.</summary>
    public static IReadOnlyList<string> Migrations(string release) =>
        [.. Directory.EnumerateFiles(MigrationsFolder(release), "*.sql").Order(StringComparer.Ordinal)];

    /// <summary>A new SQLite database file at <paramref name="path"/> with <paramref name="release"/>'s migrations applied, file by file.</summary>
    public static string CreateDatabase(string path, string release)
    {
        ApplyMigrations(path, Migrations(release));
        return path;
    }

    public static void ApplyMigrations(string path, IEnumerable<string> files)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        foreach (var file in files)
        {
            using var transaction = connection.BeginTransaction();
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = File.ReadAllText(file);
            command.ExecuteNonQuery();
            transaction.Commit();
        }
    }

    /// <summary>The rows of the notes table as (tenant_id, title), read straight from the file.</summary>
    public static List<(string TenantId, string Title)> Rows(string path)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, Mode = SqliteOpenMode.ReadOnly }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, title FROM notes ORDER BY tenant_id, title";
        using var reader = command.ExecuteReader();
        var rows = new List<(string, string)>();
        while (reader.Read())
        {
            rows.Add((reader.GetString(0), reader.GetString(1)));
        }

        return rows;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Tenantry.slnx) is not above " + AppContext.BaseDirectory);
    }
}
