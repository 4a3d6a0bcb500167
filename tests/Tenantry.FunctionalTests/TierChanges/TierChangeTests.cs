using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;
using Tenantry.ControlPlane.TierChanges;
using Tenantry.Data;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.TierChanges;

/// <summary>Tier changes that move a tenant's data on the embedded engine: the pool file, and a file per bridge and silo tenant.</summary>
public sealed class TierChangeTests : IAsyncLifetime
{
    private const string Notes = "CREATE TABLE notes (tenant_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, n INTEGER, PRIMARY KEY (tenant_id, id));";

    private readonly TenantryFactory _factory = new();

    public Task InitializeAsync()
    {
        _factory.Settings["Tenantry:TierChanges:SourceGrace"] = "00:00:00";
        _factory.Settings["Tenantry:TierChanges:DrainTime"] = "00:00:00";
        _factory.Settings["Tenantry:TierChanges:CopyBatchSize"] = "7";
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    private TierChangeHooks Hooks => _factory.Services.GetRequiredService<TierChangeHooks>();

    [Fact]
    public async Task Basic_to_premium_to_standard_to_basic_keeps_every_row_and_file_and_leaves_no_old_copy()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await client.CreateActiveTenantAsync("mover", "basic");
        var neighbour = await client.CreateActiveTenantAsync("mover-neighbour", "basic");
        var rows = Enumerable.Range(0, 40).Select(i => ($"n{i:D3}", $"body {i}", (long)i)).ToList();
        await InsertAsync(Ref(id, "mover", IsolationModel.Pool), rows);
        await InsertAsync(Ref(neighbour, "mover-neighbour", IsolationModel.Pool), [("x", "neighbour's", 1L)]);
        var file = Path.Combine(_factory.DataDir, "tenants", "mover", "kept.txt");
        await File.WriteAllTextAsync(file, "stays where it is");

        var databases = Path.Combine(_factory.DataDir, "databases");
        foreach (var (tier, isolation) in new[] { ("premium", IsolationModel.Silo), ("standard", IsolationModel.Bridge), ("basic", IsolationModel.Pool) })
        {
            var op = await ChangeTierAsync(client, id, tier);
            Assert.Equal("succeeded", op.GetProperty("status").GetString());
            Assert.Equal(
                ["provision-target", "capture-changes", "copy", "catch-up", "freeze", "verify", "switch", "drain", "retire-source"],
                op.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());

            var tenant = await client.GetJsonAsync($"/v1/tenants/{id}");
            Assert.Equal((tier, isolation.ToWire(), "active"), (tenant.GetProperty("tier").GetString(), tenant.GetProperty("isolation").GetString(), tenant.GetProperty("status").GetString()));
            Assert.Equal(isolation.ToWire(), tenant.GetProperty("resources").GetProperty("database").GetProperty("model").GetString());
            Assert.Equal(rows.OrderBy(r => r.Item1), await ReadAsync(Ref(id, "mover", isolation)));
            Assert.Equal("stays where it is", await File.ReadAllTextAsync(file));

            // Only the current place holds the tenant's rows; the neighbour still sees only its own.
            Assert.Equal(isolation == IsolationModel.Silo, File.Exists(Path.Combine(databases, "silo", "mover.db")));
            Assert.Equal(isolation == IsolationModel.Bridge, File.Exists(Path.Combine(databases, "bridge", "mover.db")));
            Assert.Equal(isolation == IsolationModel.Pool ? 40L : 0L, await PoolRowsAsync(id));
            Assert.Equal([("x", "neighbour's", 1L)], await ReadAsync(Ref(neighbour, "mover-neighbour", IsolationModel.Pool)));
            Assert.Empty(await TriggersAsync(Path.Combine(databases, "pool.db")));
        }

        // The old copies went into the tenant's export folder before they were deleted.
        Assert.Equal(3, Directory.GetFiles(Path.Combine(_factory.DataDir, "tenants", "mover"), "*before-tier-change*", SearchOption.AllDirectories).Length);

        // A neighbour on the pool cannot reach the moved tenant's rows, even by naming them.
        await using var session = await _factory.Services.GetRequiredService<ITenantDataSource>().OpenReadSessionAsync((await ContextAsync(Ref(neighbour, "mover-neighbour", IsolationModel.Pool)))!);
        Assert.Empty(await session.QueryAsync("SELECT id FROM notes WHERE tenant_id = @t", r => r.GetString(0), [("@t", id)]));
    }

    [Fact]
    public async Task Rows_written_inserted_changed_and_deleted_while_the_copy_runs_arrive_through_catch_up()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await client.CreateActiveTenantAsync("busy", "basic");
        var pool = Ref(id, "busy", IsolationModel.Pool);
        await InsertAsync(pool, [.. Enumerable.Range(0, 30).Select(i => ($"n{i:D3}", $"body {i}", (long)i))]);

        var batches = 0;
        Hooks.At = async (point, tenant, ct) =>
        {
            if (point != "copy-batch" || tenant != Guid.Parse(id))
            {
                return;
            }

            // Between the copy's batches: a new row, a change to a row already copied, a row deleted.
            var batch = ++batches;
            await using var s = await _factory.Services.GetRequiredService<ITenantDataSource>().OpenSessionAsync((await ContextAsync(pool))!, ct);
            await s.ExecuteAsync("INSERT INTO notes (id, body, n) VALUES (@id, 'written during the copy', @n)", [("@id", $"w{batch}"), ("@n", 100 + batch)], ct);
            await s.ExecuteAsync("UPDATE notes SET body = 'changed during the copy' WHERE id = @id", [("@id", $"n{batch - 1:D3}")], ct);
            await s.ExecuteAsync("DELETE FROM notes WHERE id = @id", [("@id", $"n{29 - batch:D3}")], ct);
            await s.CommitAsync(ct);
        };

        var op = await ChangeTierAsync(client, id, "standard");
        Assert.Equal("succeeded", op.GetProperty("status").GetString());
        Assert.True(batches >= 3, $"only {batches} batches");

        var moved = await ReadAsync(Ref(id, "busy", IsolationModel.Bridge));
        Assert.Contains(("w1", "written during the copy", 101L), moved);
        Assert.Contains(("n000", "changed during the copy", 0L), moved);
        Assert.DoesNotContain(moved, r => r.Item1 == "n028");
        Assert.Equal(30 + batches - batches, moved.Count);
    }

    [Fact]
    public async Task During_the_freeze_the_route_is_frozen_and_writes_are_refused_while_reads_go_on()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await client.CreateActiveTenantAsync("frozen", "basic");
        var pool = Ref(id, "frozen", IsolationModel.Pool);
        await InsertAsync(pool, [("a", "before", 1L)]);

        bool? routeFrozen = null;
        Exception? refused = null;
        List<(string, string, long)>? read = null;
        Hooks.At = async (point, tenant, ct) =>
        {
            if (point != "frozen" || tenant != Guid.Parse(id))
            {
                return;
            }

            routeFrozen = (await _factory.Services.GetRequiredService<ITenantRouteTable>().ReadAsync(ct)).Items.Single(r => r.TenantId == tenant).Frozen;
            read = await ReadAsync(pool);
            refused = await Record.ExceptionAsync(() => InsertAsync(pool, [("b", "during the freeze", 2L)]));
        };

        var op = await ChangeTierAsync(client, id, "premium");
        Assert.Equal("succeeded", op.GetProperty("status").GetString());
        Assert.True(routeFrozen);
        Assert.Equal([("a", "before", 1L)], read);
        Assert.Contains("frozen for a tier change", Assert.IsType<SqliteException>(refused).Message, StringComparison.Ordinal);
        Assert.False((await _factory.Services.GetRequiredService<ITenantRouteTable>().ReadAsync(CancellationToken.None)).Items.Single(r => r.TenantId == Guid.Parse(id)).Frozen);

        // After the switch the tenant writes again, at its new place.
        var silo = Ref(id, "frozen", IsolationModel.Silo);
        await InsertAsync(silo, [("c", "after", 3L)]);
        Assert.Equal([("a", "before", 1L), ("c", "after", 3L)], await ReadAsync(silo));
    }

    [Fact]
    public async Task A_checksum_mismatch_fails_before_the_switch_and_rolls_back_with_nothing_lost()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await client.CreateActiveTenantAsync("mismatch", "basic");
        var pool = Ref(id, "mismatch", IsolationModel.Pool);
        await InsertAsync(pool, [("a", "one", 1L), ("b", "two", 2L)]);
        var target = Path.Combine(_factory.DataDir, "databases", "silo", "mismatch.db");
        Hooks.At = async (point, tenant, ct) =>
        {
            if (point == "bulk-verify" && tenant == Guid.Parse(id))
            {
                // A row the source never had: the copy is not what the source holds.
                await using var c = new SqliteConnection($"Data Source={target};Pooling=false");
                await c.OpenAsync(ct);
                await using var command = c.CreateCommand();
                command.CommandText = "UPDATE notes SET body = 'tampered' WHERE id = 'b'";
                await command.ExecuteNonQueryAsync(ct);
            }
        };

        var op = await ChangeTierAsync(client, id, "premium");
        Assert.Equal("failed", op.GetProperty("status").GetString());
        Assert.Contains("differs", op.GetProperty("error").GetString(), StringComparison.Ordinal);
        var steps = op.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("status").GetString());
        Assert.Equal(("failed", "pending", "pending"), (steps["catch-up"], steps["freeze"], steps["switch"]));

        var tenant = await client.GetJsonAsync($"/v1/tenants/{id}");
        Assert.Equal(("basic", "pool", "active"), (tenant.GetProperty("tier").GetString(), tenant.GetProperty("isolation").GetString(), tenant.GetProperty("status").GetString()));
        Assert.False(File.Exists(target));
        Assert.Empty(await TriggersAsync(Path.Combine(_factory.DataDir, "databases", "pool.db")));
        Assert.False((await _factory.Services.GetRequiredService<ITenantRouteTable>().ReadAsync(CancellationToken.None)).Items.Single(r => r.TenantId == Guid.Parse(id)).Frozen);

        // Nothing lost, and the tenant writes at its source as before.
        await InsertAsync(pool, [("c", "three", 3L)]);
        Assert.Equal([("a", "one", 1L), ("b", "two", 2L), ("c", "three", 3L)], await ReadAsync(pool));

        // A failed tier change is not retried; a new one is started, and goes through.
        using (var retry = await client.PostAsync(new Uri($"/v1/operations/{op.GetProperty("id").GetString()}/retry", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Conflict, retry.StatusCode);
        }

        Hooks.At = null;
        Assert.Equal("succeeded", (await ChangeTierAsync(client, id, "premium")).GetProperty("status").GetString());
        Assert.Equal([("a", "one", 1L), ("b", "two", 2L), ("c", "three", 3L)], await ReadAsync(Ref(id, "mismatch", IsolationModel.Silo)));
    }

    [Fact]
    public async Task Under_the_freeze_the_rows_changed_since_the_bulk_verify_are_checked_again()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await client.CreateActiveTenantAsync("late-change", "basic");
        var pool = Ref(id, "late-change", IsolationModel.Pool);
        await InsertAsync(pool, [("a", "one", 1L)]);
        var target = Path.Combine(_factory.DataDir, "databases", "silo", "late-change.db");
        Hooks.At = async (point, tenant, ct) =>
        {
            if (tenant != Guid.Parse(id))
            {
                return;
            }

            if (point == "bulk-verify")
            {
                // Written while the bulk verify starts: its change waits in the log and reaches the target under the freeze.
                await InsertAsync(pool, [("late", "written late", 2L)]);
            }
            else if (point == "verify")
            {
                await using var c = new SqliteConnection($"Data Source={target};Pooling=false");
                await c.OpenAsync(ct);
                await using var command = c.CreateCommand();
                command.CommandText = "UPDATE notes SET body = 'tampered' WHERE id = 'late'";
                Assert.Equal(1, await command.ExecuteNonQueryAsync(ct));
            }
        };

        var op = await ChangeTierAsync(client, id, "premium");
        Assert.Equal("failed", op.GetProperty("status").GetString());
        Assert.Contains("Table 'notes' differs", op.GetProperty("error").GetString(), StringComparison.Ordinal);
        var steps = op.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!, s => s.GetProperty("status").GetString());
        Assert.Equal(("succeeded", "failed", "pending"), (steps["catch-up"], steps["verify"], steps["switch"]));

        // Rolled back: the tenant stays on the pool with both rows, and writes there again.
        Assert.False(File.Exists(target));
        await InsertAsync(pool, [("b", "after", 3L)]);
        Assert.Equal([("a", "one", 1L), ("b", "after", 3L), ("late", "written late", 2L)], await ReadAsync(pool));
    }

    [Fact]
    public async Task Bad_requests_are_refused_and_a_second_change_waits_for_the_first()
    {
        using var client = await _factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("refused", "basic");

        using (var unknown = await client.PostAsJsonAsync($"/v1/tenants/{id}/tier", new { tier = "platinum" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
            Assert.True((await unknown.JsonAsync()).GetProperty("errors").TryGetProperty("tier", out _));
        }

        using (var same = await client.PostAsJsonAsync($"/v1/tenants/{id}/tier", new { tier = "basic" }))
        {
            Assert.Equal(HttpStatusCode.Conflict, same.StatusCode);
            Assert.EndsWith("tier-unchanged", (await same.JsonAsync()).GetProperty("type").GetString(), StringComparison.Ordinal);
        }

        using var hold = new SemaphoreSlim(0);
        Hooks.At = async (point, _, ct) =>
        {
            if (point == "copy-batch" || point == "verify")
            {
                await hold.WaitAsync(ct);
                hold.Release();
            }
        };

        // PATCH of the tier alone starts the same operation: 202 with its Location.
        var etag = (await client.GetAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative))).Headers.ETag!.Tag;
        using var patch = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{id}") { Content = JsonContent.Create(new { tier = "standard" }) };
        patch.Headers.IfMatch.Add(new System.Net.Http.Headers.EntityTagHeaderValue(etag));
        using var started = await client.SendAsync(patch);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var location = started.Headers.Location!.ToString();
        Assert.Equal("change-tier", (await started.JsonAsync()).GetProperty("kind").GetString());

        using (var second = await client.PostAsJsonAsync($"/v1/tenants/{id}/tier", new { tier = "premium" }))
        {
            Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
            Assert.EndsWith("operation-in-progress", (await second.JsonAsync()).GetProperty("type").GetString(), StringComparison.Ordinal);
        }

        using (var suspend = await client.PostAsync(new Uri($"/v1/tenants/{id}/suspend", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Conflict, suspend.StatusCode);
        }

        hold.Release();
        Assert.Equal("succeeded", (await WaitAsync(client, location)).GetProperty("status").GetString());

        // The same Idempotency-Key answers the same operation.
        using var first = new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{id}/tier") { Content = JsonContent.Create(new { tier = "basic" }) };
        first.Headers.Add("Idempotency-Key", "move-back-1");
        using var again = new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{id}/tier") { Content = JsonContent.Create(new { tier = "basic" }) };
        again.Headers.Add("Idempotency-Key", "move-back-1");
        using var a = await client.SendAsync(first);
        using var b = await client.SendAsync(again);
        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted), (a.StatusCode, b.StatusCode));
        Assert.Equal(a.Headers.Location, b.Headers.Location);
        Assert.Equal("succeeded", (await WaitAsync(client, a.Headers.Location!.ToString())).GetProperty("status").GetString());
    }

    internal static async Task<JsonElement> ChangeTierAsync(HttpClient client, string id, string tier)
    {
        using var response = await client.PostAsJsonAsync($"/v1/tenants/{id}/tier", new { tier });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return await WaitAsync(client, response.Headers.Location!.ToString());
    }

    internal static async Task<JsonElement> WaitAsync(HttpClient client, string location, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonElement op;
        do
        {
            op = await client.GetJsonAsync(location);
            if (op.GetProperty("status").GetString() is "succeeded" or "failed")
            {
                return op;
            }

            await Task.Delay(50);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"The operation did not finish: {op}");
        return op;
    }

    private static TenantRef Ref(string id, string slug, IsolationModel isolation) => TenantRef.ForData(Guid.Parse(id), slug, isolation);

    private async Task<TenantDataContext?> ContextAsync(TenantRef tenant) =>
        await _factory.Services.GetRequiredService<ITenantDatabaseProvider>().ConnectAsync(tenant, CancellationToken.None);

    private async Task InsertAsync(TenantRef tenant, IEnumerable<(string Id, string Body, long N)> rows)
    {
        await using var session = await _factory.Services.GetRequiredService<ITenantDataSource>().OpenSessionAsync((await ContextAsync(tenant))!);
        foreach (var (rowId, body, n) in rows)
        {
            await session.ExecuteAsync("INSERT INTO notes (tenant_id, id, body, n) VALUES (@t, @id, @body, @n)",
                [("@t", tenant.Id.ToString()), ("@id", rowId), ("@body", body), ("@n", n)]);
        }

        await session.CommitAsync();
    }

    private async Task<List<(string, string, long)>> ReadAsync(TenantRef tenant)
    {
        await using var session = await _factory.Services.GetRequiredService<ITenantDataSource>().OpenReadSessionAsync((await ContextAsync(tenant))!);
        return await session.QueryAsync("SELECT id, body, n FROM notes ORDER BY id", r => (r.GetString(0), r.GetString(1), r.GetInt64(2)));
    }

    private async Task<long> PoolRowsAsync(string id)
    {
        await using var c = new SqliteConnection($"Data Source={Path.Combine(_factory.DataDir, "databases", "pool.db")};Pooling=false;Mode=ReadOnly");
        await c.OpenAsync();
        await using var command = c.CreateCommand();
        command.CommandText = "SELECT count(*) FROM notes WHERE tenant_id = @t";
        command.Parameters.AddWithValue("@t", id);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<List<string>> TriggersAsync(string file)
    {
        await using var c = new SqliteConnection($"Data Source={file};Pooling=false;Mode=ReadOnly");
        await c.OpenAsync();
        await using var command = c.CreateCommand();
        command.CommandText = "SELECT name FROM sqlite_master WHERE name LIKE 'tenantry_tier_%'";
        var names = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }

        return names;
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
            migrations = new[] { new { id = "001_notes", sql = Notes } },
            process = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } },
        });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
    }
}
