using System.Text.Json.Nodes;
using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Samples.Tests;

/// <summary>The sample's releases as Tenantry registers them: the manifest, release 2.0.0's body, and their migrations.</summary>
public sealed class NotesReleaseTests : NotesTestBase
{
    [Fact]
    public void Release_2_0_0_keeps_every_migration_of_1_0_0_byte_for_byte_and_adds_one()
    {
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(NotesSample.Folder, "tenantry.app.json")))!;
        var release2 = JsonNode.Parse(File.ReadAllText(Path.Combine(NotesSample.Folder, "release-2.0.0.json")))!;
        Assert.Equal("notes", manifest["name"]!.GetValue<string>());
        Assert.Equal("/notes", manifest["routePrefix"]!.GetValue<string>());
        Assert.Equal("/healthz", manifest["healthPath"]!.GetValue<string>());
        Assert.Equal(2, manifest["shared"]!["instances"]!.GetValue<int>());

        string Folder(JsonNode release) => Path.GetFullPath(Path.Combine(NotesSample.Folder, release["migrationsPath"]!.GetValue<string>()));
        Assert.Equal("1.0.0", manifest["release"]!["version"]!.GetValue<string>());
        Assert.Equal(NotesSample.MigrationsFolder("1.0.0"), Folder(manifest["release"]!));
        Assert.Equal("2.0.0", release2["version"]!.GetValue<string>());
        Assert.Equal(NotesSample.MigrationsFolder("2.0.0"), Folder(release2));
        foreach (var release in new[] { manifest["release"]!, release2 })
        {
            Assert.Equal("python3", release["process"]!["command"]!.GetValue<string>());
            Assert.True(File.Exists(Path.Combine(NotesSample.Folder, release["process"]!["workingDirectory"]!.GetValue<string>(), "app.py")));
        }

        Assert.Equal("pin", release2["process"]!["env"]!["NOTES_FEATURES"]!.GetValue<string>());

        var first = NotesSample.Migrations("1.0.0");
        var second = NotesSample.Migrations("2.0.0");
        Assert.Equal(["0001_create_notes.sql"], first.Select(Path.GetFileName));
        Assert.Equal(["0001_create_notes.sql", "0002_add_pinned.sql"], second.Select(Path.GetFileName));
        Assert.Equal(File.ReadAllBytes(first[0]), File.ReadAllBytes(second[0]));
    }

    [Fact]
    public async Task The_migrations_run_unchanged_on_sqlite_and_postgresql()
    {
        var migrations = NotesSample.Migrations("2.0.0");
        var sqlite = NotesSample.CreateDatabase(DatabasePath("portable"), "2.0.0");
        Assert.Empty(NotesSample.Rows(sqlite));

        await using var postgres = await PostgresServer.StartAsync();
        await postgres.ExecuteAsync("CREATE DATABASE notes");
        await using var connection = new NpgsqlConnection(postgres.SuperuserConnectionStringFor("notes"));
        await connection.OpenAsync();
        foreach (var file in migrations)
        {
            await using var transaction = await connection.BeginTransactionAsync();
            await using (var migrate = new NpgsqlCommand(await File.ReadAllTextAsync(file), connection, transaction))
            {
                await migrate.ExecuteNonQueryAsync();
            }

            await transaction.CommitAsync();
        }

        // The insert release 1.0.0 makes (no pinned) takes the column's default on PostgreSQL too.
        await using (var insert = new NpgsqlCommand(
            "INSERT INTO notes (id, tenant_id, title, body, created_by, created_at, updated_at) VALUES ($1, $2, 't', 'b', 'ada', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')", connection))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = Guid.CreateVersion7().ToString() });
            insert.Parameters.Add(new NpgsqlParameter { Value = Guid.CreateVersion7() });
            Assert.Equal(1, await insert.ExecuteNonQueryAsync());
        }

        await using var read = new NpgsqlCommand("SELECT pinned FROM notes", connection);
        Assert.Equal(0, Convert.ToInt32(await read.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));

        // tenant_id is a uuid, which the pool's row-level security compares with the uuid of app.tenant_id.
        await using var type = new NpgsqlCommand("SELECT data_type FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tenant_id'", connection);
        Assert.Equal("uuid", await type.ExecuteScalarAsync());
    }
}
