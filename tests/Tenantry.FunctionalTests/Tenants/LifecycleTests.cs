using System.IO.Compression;
using System.Net;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Tenants;

public sealed class LifecycleTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Fact]
    public async Task Suspend_reactivate_and_offboard_follow_the_lifecycle()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("cycle");

        await Expect(client, $"/v1/tenants/{id}/reactivate", HttpMethod.Post, HttpStatusCode.Conflict);
        var suspend = await Expect(client, $"/v1/tenants/{id}/suspend", HttpMethod.Post, HttpStatusCode.Accepted);
        Assert.Equal("suspension", suspend.GetProperty("kind").GetString());
        await client.WaitForStatusAsync(id, "suspended");
        await Expect(client, $"/v1/tenants/{id}/suspend", HttpMethod.Post, HttpStatusCode.Conflict);

        await Expect(client, $"/v1/tenants/{id}/reactivate", HttpMethod.Post, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "active");

        await Expect(client, $"/v1/tenants/{id}", HttpMethod.Delete, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "offboarded");
        await Expect(client, $"/v1/tenants/{id}/suspend", HttpMethod.Post, HttpStatusCode.Conflict);
        await Expect(client, $"/v1/tenants/{id}/reactivate", HttpMethod.Post, HttpStatusCode.Conflict);
        await Expect(client, $"/v1/tenants/{id}", HttpMethod.Delete, HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task An_operation_in_flight_blocks_another()
    {
        using var client = await factory.OperatorAsync();
        using var created = await client.CreateTenantAsync(new { name = "Busy", slug = "busy-one", tier = "premium", adminEmail = "a@busy.test" });
        var id = (await created.JsonAsync()).GetProperty("id").GetString()!;
        // Still provisioning: no other operation may start.
        using var request = new HttpRequestMessage(HttpMethod.Delete, $"/v1/tenants/{id}");
        using var response = await client.SendAsync(request);
        if ((await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("status").GetString() == "provisioning")
        {
            Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        }

        await client.WaitForStatusAsync(id, response.StatusCode == HttpStatusCode.Accepted ? "offboarded" : "active");
    }

    [Fact]
    public async Task Suspension_revokes_access_and_reactivation_restores_it()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("gated");
        await Expect(client, $"/v1/tenants/{id}/suspend", HttpMethod.Post, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "suspended");
        Assert.Equal(0L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT enabled FROM tenant_routes WHERE tenant_id = $id", id));
        Assert.Equal(1L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT disabled FROM tenant_users WHERE tenant_id = $id", id));
        await Expect(client, $"/v1/tenants/{id}/reactivate", HttpMethod.Post, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "active");
        Assert.Equal(1L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT enabled FROM tenant_routes WHERE tenant_id = $id", id));
        Assert.Equal(0L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT disabled FROM tenant_users WHERE tenant_id = $id", id));
        // The notify step of each operation queued one mail to the admin: the welcome, then the two notices.
        Assert.Equal(3L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT count(*) FROM mails WHERE tenant_id = $id", id));
    }

    [Fact]
    public async Task Offboarding_exports_only_this_tenants_data_then_removes_it()
    {
        using var client = await factory.OperatorAsync();
        var leaving = await client.CreateActiveTenantAsync("leaving");
        var staying = await client.CreateActiveTenantAsync("staying");
        var upload = Path.Combine(factory.DataDir, "tenants", "leaving", "uploads", "invoice.txt");
        await File.WriteAllTextAsync(upload, "leaving's file");

        await Expect(client, $"/v1/tenants/{leaving}", HttpMethod.Delete, HttpStatusCode.Accepted);
        var tenant = await client.WaitForStatusAsync(leaving, "offboarded");

        var archive = tenant.GetProperty("resources").GetProperty("archive");
        var path = archive.GetProperty("path").GetString()!;
        Assert.StartsWith(Path.Combine(factory.DataDir, "tenants", "leaving", "exports"), path, StringComparison.Ordinal);
        Assert.Equal(64, archive.GetProperty("sha256").GetString()!.Length);
        using (var zip = ZipFile.OpenRead(path))
        {
            Assert.NotNull(zip.GetEntry("tenant.json"));
            using var reader = new StreamReader(zip.GetEntry("files/uploads/invoice.txt")!.Open());
            Assert.Equal("leaving's file", await reader.ReadToEndAsync());
            using var rows = new StreamReader(zip.GetEntry("database/tenants.jsonl")!.Open());
            var lines = (await rows.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.Contains(leaving, lines[0], StringComparison.Ordinal);
            Assert.DoesNotContain(staying, lines[0], StringComparison.Ordinal);
        }

        Assert.False(File.Exists(upload));
        Assert.False(tenant.GetProperty("resources").TryGetProperty("database", out _));
        Assert.Equal(0L, await PoolRowsAsync(leaving));
        Assert.Equal(1L, await PoolRowsAsync(staying));
        Assert.Equal(0L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT count(*) FROM tenant_routes WHERE tenant_id = $id", leaving));
        var op = await client.GetJsonAsync($"/v1/operations/{tenant.GetProperty("operationId").GetString()}");
        Assert.Equal(
            ["export-data", "revoke-access", "delete-compute", "delete-queue", "delete-storage", "delete-database", "archive"],
            op.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());
    }

    [Fact]
    public async Task Offboarding_a_silo_tenant_removes_its_database_file()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("silo-gone", "premium");
        var file = Path.Combine(factory.DataDir, "databases", "silo", "silo-gone.db");
        Assert.True(File.Exists(file));
        await Expect(client, $"/v1/tenants/{id}", HttpMethod.Delete, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "offboarded");
        Assert.False(File.Exists(file));
        Assert.False(Directory.Exists(Path.Combine(factory.DataDir, "compute", "silo-gone")));
    }

    [Fact]
    public async Task A_failing_step_fails_the_tenant_and_retry_resumes_from_that_step()
    {
        using var client = await factory.OperatorAsync();
        // A real fault: a file sits where the tenant's storage folder must go.
        var blocker = Path.Combine(factory.DataDir, "tenants", "blocked");
        Directory.CreateDirectory(Path.GetDirectoryName(blocker)!);
        await File.WriteAllTextAsync(blocker, "in the way");

        using var created = await client.CreateTenantAsync(new { name = "Blocked", slug = "blocked", tier = "basic", adminEmail = "a@blocked.test" });
        var body = await created.JsonAsync();
        var id = body.GetProperty("id").GetString()!;
        var opId = body.GetProperty("operationId").GetString()!;
        var failed = await client.WaitForStatusAsync(id, "failed");
        Assert.Contains("provision-storage", failed.GetProperty("statusReason").GetString(), StringComparison.Ordinal);

        var op = await client.GetJsonAsync($"/v1/operations/{opId}");
        Assert.Equal("failed", op.GetProperty("status").GetString());
        var steps = op.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.Equal("succeeded", steps["create-database"].GetProperty("status").GetString());
        Assert.Equal("failed", steps["provision-storage"].GetProperty("status").GetString());
        Assert.Equal(4, steps["provision-storage"].GetProperty("attempts").GetInt32());
        Assert.False(string.IsNullOrEmpty(steps["provision-storage"].GetProperty("error").GetString()));
        Assert.Equal("pending", steps["notify"].GetProperty("status").GetString());

        File.Delete(blocker);
        await Expect(client, $"/v1/operations/{opId}/retry", HttpMethod.Post, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "active");
        op = await client.GetJsonAsync($"/v1/operations/{opId}");
        steps = op.GetProperty("steps").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.All(steps.Values, s => Assert.Equal("succeeded", s.GetProperty("status").GetString()));
        Assert.Equal(1, steps["create-database"].GetProperty("attempts").GetInt32());
        Assert.Equal(5, steps["provision-storage"].GetProperty("attempts").GetInt32());
        await Expect(client, $"/v1/operations/{opId}/retry", HttpMethod.Post, HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task Storage_owned_by_another_tenant_fails_at_once_without_retries()
    {
        using var client = await factory.OperatorAsync();
        var folder = Path.Combine(factory.DataDir, "tenants", "squatted");
        Directory.CreateDirectory(folder);
        await File.WriteAllTextAsync(Path.Combine(folder, ".tenant-id"), Guid.NewGuid().ToString());
        using var created = await client.CreateTenantAsync(new { name = "Squatted", slug = "squatted", tier = "basic", adminEmail = "a@sq.test" });
        var body = await created.JsonAsync();
        await client.WaitForStatusAsync(body.GetProperty("id").GetString()!, "failed");
        var op = await client.GetJsonAsync($"/v1/operations/{body.GetProperty("operationId").GetString()}");
        var step = op.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("name").GetString() == "provision-storage");
        Assert.Equal(1, step.GetProperty("attempts").GetInt32());
        Assert.Contains("another tenant", step.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_tenant_can_be_offboarded_leaving_nothing_half_made()
    {
        using var client = await factory.OperatorAsync();
        var blocker = Path.Combine(factory.DataDir, "tenants", "half-made");
        Directory.CreateDirectory(Path.GetDirectoryName(blocker)!);
        await File.WriteAllTextAsync(blocker, "in the way");
        using var created = await client.CreateTenantAsync(new { name = "Half", slug = "half-made", tier = "basic", adminEmail = "a@half.test" });
        var id = (await created.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "failed");
        Assert.Equal(1L, await PoolRowsAsync(id));
        File.Delete(blocker);
        await Expect(client, $"/v1/tenants/{id}", HttpMethod.Delete, HttpStatusCode.Accepted);
        await client.WaitForStatusAsync(id, "offboarded");
        Assert.Equal(0L, await PoolRowsAsync(id));
    }

    [Fact]
    public async Task Waiting_on_an_operation_answers_once_it_has_finished()
    {
        using var client = await factory.OperatorAsync();
        using var created = await client.CreateTenantAsync(new { name = "Waiter", slug = "waiter", tier = "premium", adminEmail = "a@waiter.test" });
        var opId = (await created.JsonAsync()).GetProperty("operationId").GetString();
        var op = await client.GetJsonAsync($"/v1/operations/{opId}?wait=20");
        Assert.Equal("succeeded", op.GetProperty("status").GetString());
        await Expect(client, $"/v1/operations/{opId}?wait=31", HttpMethod.Get, HttpStatusCode.BadRequest);
        await Expect(client, $"/v1/operations/{opId}?wait=-1", HttpMethod.Get, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Unknown_operations_are_404()
    {
        using var client = await factory.OperatorAsync();
        await Expect(client, $"/v1/operations/{Guid.NewGuid()}", HttpMethod.Get, HttpStatusCode.NotFound);
        await Expect(client, "/v1/operations/not-a-guid", HttpMethod.Get, HttpStatusCode.NotFound);
        await Expect(client, $"/v1/operations/{Guid.NewGuid()}/retry", HttpMethod.Post, HttpStatusCode.NotFound);
        await Expect(client, "/v1/tenants/ghost-tenant/suspend", HttpMethod.Post, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Idempotency_key_on_suspend_replays_the_same_operation()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("idem-suspend");
        var first = await Expect(client, $"/v1/tenants/{id}/suspend", HttpMethod.Post, HttpStatusCode.Accepted, "sus-1");
        var again = await Expect(client, $"/v1/tenants/{id}/suspend", HttpMethod.Post, HttpStatusCode.Accepted, "sus-1");
        Assert.Equal(first.GetProperty("id").GetString(), again.GetProperty("id").GetString());
        await client.WaitForStatusAsync(id, "suspended");
    }

    [Fact]
    public async Task Audit_records_calls_and_state_changes_with_actor_and_outcome()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("audited");
        await Expect(client, $"/v1/tenants/{id}/reactivate", HttpMethod.Post, HttpStatusCode.Conflict);
        var audit = await client.GetJsonAsync("/v1/audit?tenantId=audited");
        var events = audit.GetProperty("items").EnumerateArray()
            .Select(e => (Action: e.GetProperty("action").GetString(), Outcome: e.GetProperty("outcome").GetString(), Actor: e.GetProperty("actor").GetString()))
            .ToList();
        Assert.Contains(("tenant.create", "accepted", "operator"), events);
        Assert.Contains(("tenant.status", "active", "system:operations"), events);
        Assert.Contains(("operation.onboarding", "succeeded", "system:operations"), events);
        Assert.Contains(("tenant.reactivation", "rejected", "operator"), events);
        Assert.All(audit.GetProperty("items").EnumerateArray(), e => Assert.Equal(id, e.GetProperty("tenantId").GetString()));

        var firstPage = await client.GetJsonAsync("/v1/audit?tenantId=audited&limit=2");
        Assert.Equal(2, firstPage.GetProperty("items").GetArrayLength());
        var next = await client.GetJsonAsync($"/v1/audit?tenantId=audited&limit=2&cursor={firstPage.GetProperty("nextCursor").GetString()}");
        Assert.NotEqual(
            firstPage.GetProperty("items")[0].GetProperty("id").GetString(),
            next.GetProperty("items")[0].GetProperty("id").GetString());
        await Expect(client, "/v1/audit?tenantId=nobody-here", HttpMethod.Get, HttpStatusCode.NotFound);
    }

    private Task<long> PoolRowsAsync(string id) => ControlDb.ScalarAsync(
        Path.Combine(factory.DataDir, "databases"), "SELECT count(*) FROM tenants WHERE tenant_id = $id", id, "pool.db");

    private static async Task<JsonElement> Expect(HttpClient client, string path, HttpMethod method, HttpStatusCode expected, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{method} {path}: expected {(int)expected}, got {(int)response.StatusCode} {text}");
        if (!response.IsSuccessStatusCode)
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        return text.Length > 0 ? JsonDocument.Parse(text).RootElement.Clone() : default;
    }
}

internal static class ControlDb
{
    public static async Task<long> ScalarAsync(string folder, string sql, string id, string file = "control.db")
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(folder, file)};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", id);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
