using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>
/// A tier change killed with SIGKILL mid-way: after a restart it either finishes (the tenant moved) or is rolled
/// back (the tenant stayed), with every row in the one place it lives and no target or trigger left behind.
/// </summary>
public sealed class TierChangeCrashTests : IDisposable
{
    private const int Rows = 1500;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-tier-crash", Guid.NewGuid().ToString("N"));

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
    public async Task A_tier_change_killed_during_a_step_ends_moved_or_on_its_source_with_every_row(string killDuring)
    {
        string id;
        string location;
        await using (var host = await StartAsync())
        {
            using var client = await host.OperatorClientAsync();
            await RegisterNotesAsync(client);
            id = await client.CreateActiveTenantAsync("crashing", "basic");
            await InsertRowsAsync(Path.Combine(_dataDir, "databases", "pool.db"), id);

            using var started = await client.PostAsJsonAsync($"/v1/tenants/{id}/tier", new { tier = "premium" });
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            location = started.Headers.Location!.ToString();

            // Watch the operation, and kill the host the first time the step is seen running (or past it, if it was quick).
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

        await using (var host = await StartAsync())
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
            var silo = Path.Combine(_dataDir, "databases", "silo", "crashing.db");
            var pool = Path.Combine(_dataDir, "databases", "pool.db");
            if (op.GetProperty("status").GetString() == "succeeded")
            {
                Assert.Equal(("premium", "silo"), (tenant.GetProperty("tier").GetString(), tenant.GetProperty("isolation").GetString()));
                Assert.Equal(Rows, await CountAsync(silo, null));
                Assert.Equal(0, await CountAsync(pool, id));
            }
            else
            {
                Assert.Equal(("basic", "pool"), (tenant.GetProperty("tier").GetString(), tenant.GetProperty("isolation").GetString()));
                Assert.Equal(Rows, await CountAsync(pool, id));
                Assert.False(File.Exists(silo));
            }

            Assert.Equal(0, await ScalarAsync(pool, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'tenantry_tier_%'", null));
        }
    }

    private Task<TenantryHost> StartAsync() => TenantryHost.StartAsync(new TenantryHostOptions
    {
        DataDir = _dataDir,
        Settings =
        [
            "--Tenantry:Operations:RetryDelay=00:00:00.010",
            "--Tenantry:Operations:PollInterval=00:00:00.100",
            "--Tenantry:TierChanges:SourceGrace=00:00:00",
            "--Tenantry:TierChanges:DrainTime=00:00:00",
            // One row per transaction: a copy long enough to be killed in the middle of.
            "--Tenantry:TierChanges:CopyBatchSize=1",
        ],
    });

    private static async Task InsertRowsAsync(string pool, string tenantId)
    {
        await using var c = new SqliteConnection($"Data Source={pool};Pooling=false");
        await c.OpenAsync();
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync();
        await using var insert = c.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = "INSERT INTO notes (tenant_id, id, body) VALUES (@t, @id, @body)";
        var t = insert.Parameters.Add("@t", SqliteType.Text);
        var rowId = insert.Parameters.Add("@id", SqliteType.Text);
        var body = insert.Parameters.Add("@body", SqliteType.Text);
        t.Value = tenantId;
        for (var i = 0; i < Rows; i++)
        {
            rowId.Value = $"n{i:D5}";
            body.Value = $"row {i}";
            await insert.ExecuteNonQueryAsync();
        }

        await tx.CommitAsync();
    }

    private static Task<long> CountAsync(string file, string? tenantId) =>
        ScalarAsync(file, tenantId is null ? "SELECT count(*) FROM notes" : "SELECT count(*) FROM notes WHERE tenant_id = @t", tenantId);

    private static async Task<long> ScalarAsync(string file, string sql, string? tenantId)
    {
        await using var c = new SqliteConnection($"Data Source={file};Pooling=false;Mode=ReadOnly");
        await c.OpenAsync();
        await using var command = c.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("@t", (object?)tenantId ?? DBNull.Value);
        return (long)(await command.ExecuteScalarAsync())!;
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
            migrations = new[] { new { id = "001_notes", sql = "CREATE TABLE notes (tenant_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, id));" } },
            process = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
    }
}
