using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Samples.Tests;

/// <summary>
/// The notes sample registered with a real host (no default app) and served through its gateway to a
/// pool, a bridge and a silo tenant: on the embedded default (SQLite files) and on a private PostgreSQL
/// server (row-level security in the pool database, a schema per bridge tenant, a database per silo tenant).
/// </summary>
public sealed class NotesHostTests
{
    [Fact]
    public async Task Pool_bridge_and_silo_tenants_each_see_only_their_own_notes_on_the_embedded_default()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp));
        await ServeThreeTiersAsync(host);

        Assert.True(File.Exists(Path.Combine(host.DataDir, "databases", "pool.db")), host.Output);
    }

    [Fact]
    [Trait("Category", "PostgreSQL")]
    public async Task Pool_bridge_and_silo_tenants_each_see_only_their_own_notes_on_postgresql()
    {
        await using var pg = await PostgresServer.StartAsync();
        await pg.ExecuteAsync("CREATE DATABASE tenantry_control");
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(
        [
            SampleApps.NoDefaultApp,
            "--Tenantry:Store=" + pg.SuperuserConnectionStringFor("tenantry_control"),
            "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
            "--Tenantry:Postgres:Servers:0:Name=pg-test",
            "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres"),
        ]));
        var (tenants, notes) = await ServeThreeTiersAsync(host);
        var (pool, poolB, bridge, silo) = (tenants[0], tenants[1], tenants[2], tenants[3]);

        Assert.False(File.Exists(Path.Combine(host.DataDir, "databases", "pool.db")), "The shared instance fell back to embedded SQLite.");
        Assert.Equal(
            notes[pool.Slug].Select(id => (pool.Id, id)).Concat(notes[poolB.Slug].Select(id => (poolB.Id, id))).Order(),
            (await QueryAsync(pg, "tenantry_pool", "SELECT tenant_id, id FROM notes", r => (r.GetGuid(0), r.GetString(1)))).Order());
        Assert.Equal(notes[bridge.Slug].Order(),
            (await QueryAsync(pg, "tenantry_bridge", "SELECT id FROM tenant_notes_bridge.notes", r => r.GetString(0))).Order());
        Assert.Equal(notes[silo.Slug].Order(),
            (await QueryAsync(pg, "tenant_notes_silo", "SELECT id FROM notes", r => r.GetString(0))).Order());

        // Tenantry forced row-level security on the sample's pool table (the catalog says so), keyed on the uuid setting.
        var (enabled, forced) = (await QueryAsync(pg, "tenantry_pool",
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass", r => (r.GetBoolean(0), r.GetBoolean(1)))).Single();
        Assert.True(enabled && forced);
        Assert.Equal("uuid", (await QueryAsync(pg, "tenantry_pool",
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tenant_id'", r => r.GetString(0))).Single());
    }

    /// <summary>
    /// Registers the sample, onboards two pool tenants, a bridge and a silo tenant, has each write notes through the
    /// gateway, and checks that each lists, reads, changes and deletes only its own. Returns the tenants (pool, pool,
    /// bridge, silo) and the ids of the notes each has left.
    /// </summary>
    private static async Task<(TenantHandle[] Tenants, Dictionary<string, List<string>> Notes)> ServeThreeTiersAsync(TenantryHost host)
    {
        using var op = await host.OperatorClientAsync();
        using (var app = await op.PostAsJsonAsync("/v1/apps", new { name = "notes", routePrefix = "/notes", healthPath = "/healthz", shared = new { instances = 1 } }))
        {
            Assert.True(app.StatusCode == HttpStatusCode.Created, await app.Content.ReadAsStringAsync());
        }

        using (var release = await op.PostAsJsonAsync("/v1/apps/notes/releases", new
        {
            version = "1.0.0",
            process = new { command = "python3", args = new[] { "app.py" }, workingDirectory = NotesSample.Folder },
            migrationsPath = NotesSample.MigrationsFolder("1.0.0"),
        }))
        {
            Assert.True(release.StatusCode == HttpStatusCode.Created, await release.Content.ReadAsStringAsync());
        }

        var tenants = await Task.WhenAll(
            host.OnboardAsync(op, "notes-pool", "basic"),
            host.OnboardAsync(op, "notes-pool-b", "basic"),
            host.OnboardAsync(op, "notes-bridge", "standard"),
            host.OnboardAsync(op, "notes-silo", "premium"));

        var notes = new Dictionary<string, List<string>>();
        foreach (var tenant in tenants)
        {
            using var client = tenant.Client();
            notes[tenant.Slug] = [];
            for (var i = 1; i <= 2; i++)
            {
                using var created = await client.PostAsJsonAsync("/notes", new { title = $"{tenant.Slug} {i}", body = "written through the gateway" });
                Assert.True(created.StatusCode == HttpStatusCode.Created, $"{tenant.Slug}: {created.StatusCode} {await created.Content.ReadAsStringAsync()}\n{host.Output}");
                var note = await created.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal(tenant.Id, note.GetProperty("tenantId").GetGuid());
                notes[tenant.Slug].Add(note.GetProperty("id").GetString()!);
            }
        }

        foreach (var tenant in tenants)
        {
            using var client = tenant.Client();
            var list = (await client.GetFromJsonAsync<JsonElement>("/notes")).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(notes[tenant.Slug], list.Select(n => n.GetProperty("id").GetString()));
            Assert.All(list, n => Assert.StartsWith(tenant.Slug + " ", n.GetProperty("title").GetString(), StringComparison.Ordinal));
            Assert.Equal("1.0.0", (await client.GetAsync(new Uri("/notes", UriKind.Relative))).Headers.GetValues("X-App-Release").Single());

            // Every other tenant's note is not found, for reading, changing and deleting; and stays as it was.
            foreach (var other in tenants.Where(t => t != tenant))
            {
                var theirs = notes[other.Slug][0];
                Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"/notes/{theirs}", UriKind.Relative))).StatusCode);
                using var put = await client.PutAsJsonAsync($"/notes/{theirs}", new { title = "taken over" });
                Assert.Equal(HttpStatusCode.NotFound, put.StatusCode);
                Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync(new Uri($"/notes/{theirs}", UriKind.Relative))).StatusCode);
            }
        }

        foreach (var tenant in tenants)
        {
            using var client = tenant.Client();
            var mine = notes[tenant.Slug][1];
            using var put = await client.PutAsJsonAsync($"/notes/{mine}", new { title = $"{tenant.Slug} changed" });
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
            Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync(new Uri($"/notes/{notes[tenant.Slug][0]}", UriKind.Relative))).StatusCode);
            notes[tenant.Slug].RemoveAt(0);
            var list = (await client.GetFromJsonAsync<JsonElement>("/notes")).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal($"{tenant.Slug} changed", Assert.Single(list).GetProperty("title").GetString());
        }

        return (tenants, notes);
    }

    private static async Task<List<T>> QueryAsync<T>(PostgresServer pg, string database, string sql, Func<NpgsqlDataReader, T> map)
    {
        await using var connection = new NpgsqlConnection(pg.SuperuserConnectionStringFor(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<T>();
        while (await reader.ReadAsync())
        {
            rows.Add(map(reader));
        }

        return rows;
    }
}
