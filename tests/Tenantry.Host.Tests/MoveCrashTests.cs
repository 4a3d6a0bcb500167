using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>
/// A move between cells on two PostgreSQL servers killed with SIGKILL mid-way: after a restart it either finishes
/// (every row on the new server, nothing left on the old one) or is rolled back (every row on the old server, no
/// copy on the new one), and the tenant's placement names the server that holds its rows.
/// </summary>
[Trait("Category", "PostgreSQL")]
public sealed class MoveCrashTests : IDisposable
{
    private const int Rows = 3000;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-move-crash", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        TenantryHost.KillLeftovers(_dataDir);
        if (Directory.Exists(_dataDir))
        {
            Directory.Delete(_dataDir, recursive: true);
        }
    }

    [Theory]
    [InlineData("copy")]
    [InlineData("switch")]
    public async Task A_move_killed_during_a_step_ends_on_one_server_with_every_row(string killDuring)
    {
        await using var a = await PostgresServer.StartAsync();
        await using var b = await PostgresServer.StartAsync();
        string id;
        string location;
        await using (var host = await StartAsync(a, b))
        {
            using var client = await host.OperatorClientAsync();
            await RegisterNotesAsync(client);
            using (var created = await client.PostAsJsonAsync("/v1/tenants", new { name = "Crashing", slug = "crashing", tier = "premium", adminEmail = "ops@crashing.test", config = new { region = "eu" } }))
            {
                Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
                id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            }

            await TenantryHost.WaitForStatusAsync(client, id, "active");
            await using (var c = new NpgsqlConnection(a.SuperuserConnectionStringFor("tenant_crashing")))
            {
                await c.OpenAsync();
                await using var insert = new NpgsqlCommand("INSERT INTO notes (tenant_id, id, body) SELECT $1, 'n' || g, 'row ' || g FROM generate_series(1, $2) g", c)
                {
                    Parameters = { new() { Value = Guid.Parse(id) }, new() { Value = Rows } },
                };
                await insert.ExecuteNonQueryAsync();
            }

            using var started = await client.PostAsJsonAsync($"/v1/tenants/{id}/move", new { cell = "eu-b" });
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            location = started.Headers.Location!.ToString();

            // Kill the host the first time the step is seen running (or past it, if it was quick).
            var order = new[] { "provision-target", "capture-changes", "copy", "catch-up", "freeze", "verify", "switch", "drain", "retire-source" };
            for (var polls = 0; polls < 20_000; polls++)
            {
                var op = await client.GetFromJsonAsync<JsonElement>(new Uri(location, UriKind.Relative));
                var running = op.GetProperty("steps").EnumerateArray().FirstOrDefault(s => s.GetProperty("status").GetString() == "running");
                if (op.GetProperty("status").GetString() is "succeeded" or "failed"
                    || (running.ValueKind == JsonValueKind.Object && Array.IndexOf(order, running.GetProperty("name").GetString()) >= Array.IndexOf(order, killDuring)))
                {
                    break;
                }

                await Task.Delay(5);
            }

            host.Kill();
        }

        await using (var host = await StartAsync(a, b))
        {
            using var client = await host.OperatorClientAsync();
            JsonElement op = default;
            for (var polls = 0; polls < 1200; polls++)
            {
                op = await client.GetFromJsonAsync<JsonElement>(new Uri(location, UriKind.Relative));
                if (op.GetProperty("status").GetString() is "succeeded" or "failed")
                {
                    break;
                }

                await Task.Delay(100);
            }

            var tenant = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative));
            Assert.Equal("active", tenant.GetProperty("status").GetString());
            var resources = tenant.GetProperty("resources");
            var (kept, gone) = op.GetProperty("status").GetString() == "succeeded" ? (b, a) : (a, b);
            var expected = op.GetProperty("status").GetString() == "succeeded" ? ("eu-b", "pg-b") : ("eu-a", "pg-a");
            var where = (resources.GetProperty("placement").GetProperty("cell").GetString(), resources.GetProperty("database").GetProperty("server").GetString());
            Assert.True(expected == where, $"the tenant is in {where} after {op}");
            Assert.Equal((long)Rows, await ScalarAsync<long>(kept, "tenant_crashing", "SELECT count(*) FROM notes"));
            Assert.Equal(0L, await ScalarAsync<long>(kept, "tenant_crashing", "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tenantry_tier_%'"));
            Assert.False(await ScalarAsync<bool>(gone, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_crashing')"));
        }
    }

    private Task<TenantryHost> StartAsync(PostgresServer a, PostgresServer b) => TenantryHost.StartAsync(new TenantryHostOptions
    {
        DataDir = _dataDir,
        Settings =
        [
            "--Tenantry:Operations:RetryDelay=00:00:00.010",
            "--Tenantry:Operations:PollInterval=00:00:00.100",
            "--Tenantry:TierChanges:SourceGrace=00:00:00",
            "--Tenantry:TierChanges:DrainTime=00:00:00",
            "--Tenantry:Postgres:Servers:0:Name=pg-a",
            "--Tenantry:Postgres:Servers:0:ConnectionString=" + a.SuperuserConnectionStringFor("postgres"),
            "--Tenantry:Postgres:Servers:1:Name=pg-b",
            "--Tenantry:Postgres:Servers:1:ConnectionString=" + b.SuperuserConnectionStringFor("postgres"),
            "--Tenantry:Cells:0:Name=eu-a",
            "--Tenantry:Cells:0:Region=eu",
            "--Tenantry:Cells:0:PostgresServers:0=pg-a",
            "--Tenantry:Cells:1:Name=eu-b",
            "--Tenantry:Cells:1:Region=eu",
            "--Tenantry:Cells:1:PostgresServers:0=pg-b",
        ],
    });

    private static async Task<T> ScalarAsync<T>(PostgresServer server, string database, string sql)
    {
        await using var connection = new NpgsqlConnection(server.SuperuserConnectionStringFor(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task RegisterNotesAsync(HttpClient client)
    {
        using (var app = await client.PostAsJsonAsync("/v1/apps", new { name = "notes", routePrefix = "/notes" }))
        {
            Assert.Equal(HttpStatusCode.Created, app.StatusCode);
        }

        using var created = await client.PostAsJsonAsync("/v1/apps/notes/releases", new
        {
            version = "1.0.0",
            migrations = new[] { new { id = "001_notes", sql = "CREATE TABLE notes (tenant_id uuid NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, id));" } },
            process = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
    }
}
