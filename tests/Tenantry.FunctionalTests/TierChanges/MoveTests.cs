using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.TierChanges;
using Tenantry.Data;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.TierChanges;

/// <summary>
/// Moves between cells on the embedded default: two cells of region eu that name no PostgreSQL servers (the
/// databases are local files), so a move keeps the data where it is and changes the placement only.
/// </summary>
public sealed class MoveTests : IAsyncLifetime
{
    private const string Notes = "CREATE TABLE notes (tenant_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, id));";

    private readonly TenantryFactory _factory = new();

    public Task InitializeAsync()
    {
        _factory.Settings["Tenantry:TierChanges:SourceGrace"] = "00:00:00";
        _factory.Settings["Tenantry:TierChanges:DrainTime"] = "00:00:00";
        _factory.Settings["Tenantry:Cells:0:Name"] = "eu-1";
        _factory.Settings["Tenantry:Cells:0:Region"] = "eu";
        _factory.Settings["Tenantry:Cells:1:Name"] = "eu-2";
        _factory.Settings["Tenantry:Cells:1:Region"] = "eu";
        _factory.Settings["Tenantry:Cells:1:Capacity"] = "2";
        _factory.Settings["Tenantry:Cells:2:Name"] = "us-1";
        _factory.Settings["Tenantry:Cells:2:Region"] = "us";
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _factory.DisposeAsync();

    [Fact]
    public async Task A_move_to_another_cell_of_the_region_changes_the_placement_and_keeps_every_row_and_file()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var silo = await CreateAsync(client, "mover-silo", "premium", "eu");
        var pool = await CreateAsync(client, "mover-pool", "basic", "eu");
        Assert.Equal("eu-1", await CellAsync(client, silo));
        var rows = new[] { ("a", "first"), ("b", "second"), ("c", "third") };
        await InsertAsync(Ref(silo, "mover-silo", IsolationModel.Silo), rows);
        await InsertAsync(Ref(pool, "mover-pool", IsolationModel.Pool), rows[..1]);
        var file = Path.Combine(_factory.DataDir, "tenants", "mover-silo", "kept.txt");
        await File.WriteAllTextAsync(file, "stays");

        foreach (var (id, slug, isolation, expected) in new[] { (silo, "mover-silo", IsolationModel.Silo, rows), (pool, "mover-pool", IsolationModel.Pool, rows[..1]) })
        {
            var to = await CellAsync(client, id) == "eu-1" ? "eu-2" : "eu-1";
            var op = await MoveAsync(client, id, to);
            Assert.Equal(("move", "succeeded"), (op.GetProperty("kind").GetString(), op.GetProperty("status").GetString()));
            Assert.Equal(
                ["provision-target", "capture-changes", "copy", "catch-up", "freeze", "verify", "switch", "drain", "retire-source"],
                op.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());

            var tenant = await client.GetJsonAsync($"/v1/tenants/{id}");
            Assert.Equal((to, "eu"), (tenant.GetProperty("resources").GetProperty("placement").GetProperty("cell").GetString(),
                tenant.GetProperty("resources").GetProperty("placement").GetProperty("region").GetString()));
            Assert.Equal((isolation.ToWire(), "active"), (tenant.GetProperty("isolation").GetString(), tenant.GetProperty("status").GetString()));
            Assert.Equal(expected.OrderBy(r => r.Item1), await ReadAsync(Ref(id, slug, isolation)));
        }

        Assert.Equal("stays", await File.ReadAllTextAsync(file));
        Assert.True(File.Exists(Path.Combine(_factory.DataDir, "databases", "silo", "mover-silo.db")));
        var cells = (await client.GetJsonAsync("/v1/cells")).GetProperty("items").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("tenants").GetInt64());
        Assert.Equal(1L, cells["eu-2"]);
        Assert.Equal("eu-1", await CellAsync(client, pool));

        // One tenant.moved event per move, naming both placements.
        var moved = (await client.GetJsonAsync($"/v1/events?tenantId={silo}&type=tenant.moved")).GetProperty("items").EnumerateArray().ToList();
        var data = Assert.Single(moved).GetProperty("data");
        Assert.Equal(("eu-1", "eu-2"), (data.GetProperty("previousPlacement").GetProperty("cell").GetString(), data.GetProperty("placement").GetProperty("cell").GetString()));

        // And back: the tenant writes as before.
        Assert.Equal("succeeded", (await MoveAsync(client, silo, "eu-1")).GetProperty("status").GetString());
        await InsertAsync(Ref(silo, "mover-silo", IsolationModel.Silo), [("d", "after")]);
        Assert.Equal(4, (await ReadAsync(Ref(silo, "mover-silo", IsolationModel.Silo))).Count);
    }

    [Fact]
    public async Task Bad_moves_are_refused_with_problem_details_and_leave_the_tenant_where_it_was()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await CreateAsync(client, "stayer", "basic", "eu");

        var missing = await PostAsync(client, id, new { });
        Assert.Equal(HttpStatusCode.BadRequest, missing.Status);
        Assert.True(missing.Body.GetProperty("errors").TryGetProperty("cell", out _), missing.Body.ToString());
        var number = await PostAsync(client, id, new { cell = 7 });
        Assert.Equal(HttpStatusCode.BadRequest, number.Status);
        Assert.True(number.Body.GetProperty("errors").TryGetProperty("cell", out _), number.Body.ToString());

        var unknown = await PostAsync(client, id, new { cell = "mars-1" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, unknown.Status);
        Assert.EndsWith("/unknown-cell", unknown.Body.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.Contains("eu-1, eu-2, us-1", unknown.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        var same = await PostAsync(client, id, new { cell = "eu-1" });
        Assert.Equal(HttpStatusCode.Conflict, same.Status);
        Assert.EndsWith("/already-in-cell", same.Body.GetProperty("type").GetString(), StringComparison.Ordinal);

        var region = await PostAsync(client, id, new { cell = "us-1" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, region.Status);
        Assert.EndsWith("/cell-outside-region", region.Body.GetProperty("type").GetString(), StringComparison.Ordinal);

        var stale = await PostAsync(client, id, new { cell = "eu-2" }, ifMatch: "\"1\"");
        Assert.Equal(HttpStatusCode.PreconditionFailed, stale.Status);

        // eu-2 takes two tenants: fill it, then a third is refused.
        foreach (var filler in new[] { "filler-1", "filler-2" })
        {
            var fillerId = await CreateAsync(client, filler, "basic", "eu");
            if (await CellAsync(client, fillerId) != "eu-2")
            {
                Assert.Equal("succeeded", (await MoveAsync(client, fillerId, "eu-2")).GetProperty("status").GetString());
            }
        }

        var full = await PostAsync(client, id, new { cell = "eu-2" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, full.Status);
        Assert.EndsWith("/no-cell-room", full.Body.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.Contains("Tenantry:Cells:N:Capacity", full.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        Assert.Equal("eu-1", await CellAsync(client, id));
        var openapi = await client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Contains("\"/v1/tenants/{id}/move\"", openapi, StringComparison.Ordinal);
        Assert.Contains("Move the tenant to another cell of its region", openapi, StringComparison.Ordinal);
        var audit = await client.GetJsonAsync($"/v1/audit?tenantId={id}");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "tenant.move" && e.GetProperty("outcome").GetString() == "rejected");
    }

    [Fact]
    public async Task A_suspended_tenant_does_not_move_another_operation_blocks_a_move_and_a_repeated_key_replays()
    {
        using var client = await _factory.OperatorAsync();
        await RegisterNotesAsync(client);
        var id = await CreateAsync(client, "held", "basic", "eu");

        // The switch waits until released: a second move meanwhile finds the first running.
        var release = new TaskCompletionSource();
        var reached = new TaskCompletionSource();
        _factory.Services.GetRequiredService<TierChangeHooks>().At = async (point, tenant, ct) =>
        {
            if (point == "switch" && tenant == Guid.Parse(id))
            {
                reached.TrySetResult();
                await release.Task.WaitAsync(ct);
            }
        };

        using var first = new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{id}/move") { Content = JsonContent.Create(new { cell = "eu-2" }) };
        first.Headers.Add("Idempotency-Key", "move-held-1");
        using var started = await client.SendAsync(first);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        await reached.Task.WaitAsync(TimeSpan.FromSeconds(30));

        using var again = new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{id}/move") { Content = JsonContent.Create(new { cell = "eu-2" }) };
        again.Headers.Add("Idempotency-Key", "move-held-1");
        using var replayed = await client.SendAsync(again);
        Assert.Equal((HttpStatusCode.Accepted, started.Headers.Location), (replayed.StatusCode, replayed.Headers.Location));

        var busy = await PostAsync(client, id, new { cell = "eu-2" });
        Assert.Equal(HttpStatusCode.Conflict, busy.Status);
        Assert.EndsWith("/operation-in-progress", busy.Body.GetProperty("type").GetString(), StringComparison.Ordinal);

        release.SetResult();
        Assert.Equal("succeeded", (await TierChangeTests.WaitAsync(client, started.Headers.Location!.ToString())).GetProperty("status").GetString());
        Assert.Equal("eu-2", await CellAsync(client, id));

        using (var suspend = await client.PostAsync(new Uri($"/v1/tenants/{id}/suspend", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        }

        await client.WaitForStatusAsync(id, "suspended");
        var suspended = await PostAsync(client, id, new { cell = "eu-1" });
        Assert.Equal(HttpStatusCode.Conflict, suspended.Status);
        Assert.EndsWith("/invalid-transition", suspended.Body.GetProperty("type").GetString(), StringComparison.Ordinal);
    }

    internal static async Task<JsonElement> MoveAsync(HttpClient client, string id, string cell, int seconds = 60)
    {
        using var response = await client.PostAsJsonAsync($"/v1/tenants/{id}/move", new { cell });
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        return await TierChangeTests.WaitAsync(client, response.Headers.Location!.ToString(), seconds);
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(HttpClient client, string id, object body, string? ifMatch = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{id}/move") { Content = JsonContent.Create(body) };
        if (ifMatch is not null)
        {
            request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static async Task<string> CreateAsync(HttpClient client, string slug, string tier, string region)
    {
        using var response = await client.CreateTenantAsync(new { name = slug, slug, tier, adminEmail = $"ops@{slug}.test", config = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active", seconds: 60);
        return id;
    }

    private static async Task<string?> CellAsync(HttpClient client, string id) =>
        (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources").GetProperty("placement").GetProperty("cell").GetString();

    private static TenantRef Ref(string id, string slug, IsolationModel isolation) => TenantRef.ForData(Guid.Parse(id), slug, isolation);

    private async Task<TenantDataContext> ContextAsync(TenantRef tenant) =>
        (await _factory.Services.GetRequiredService<ITenantDatabaseProvider>().ConnectAsync(tenant, CancellationToken.None))!;

    private async Task InsertAsync(TenantRef tenant, IEnumerable<(string Id, string Body)> rows)
    {
        await using var session = await _factory.Services.GetRequiredService<ITenantDataSource>().OpenSessionAsync(await ContextAsync(tenant));
        foreach (var (rowId, body) in rows)
        {
            await session.ExecuteAsync("INSERT INTO notes (tenant_id, id, body) VALUES (@t, @id, @body)", [("@t", tenant.Id.ToString()), ("@id", rowId), ("@body", body)]);
        }

        await session.CommitAsync();
    }

    private async Task<List<(string, string)>> ReadAsync(TenantRef tenant)
    {
        await using var session = await _factory.Services.GetRequiredService<ITenantDataSource>().OpenReadSessionAsync(await ContextAsync(tenant));
        return await session.QueryAsync("SELECT id, body FROM notes ORDER BY id", r => (r.GetString(0), r.GetString(1)));
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
