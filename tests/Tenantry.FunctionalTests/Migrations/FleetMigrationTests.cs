using System.Net;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Migrations;

/// <summary>Fleet migrations as durable background runs: 202, progress, per-tenant results, one at a time, resumed by the next host.</summary>
public sealed class FleetMigrationTests : IDisposable
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private TenantryFactory Host()
    {
        var factory = new TenantryFactory();
        factory.Settings["Tenantry:DataDir"] = _dataDir;
        return factory;
    }

    [Fact]
    public async Task A_fleet_migration_answers_202_and_reports_every_tenant_with_its_progress()
    {
        await using var host = Host();
        using var client = await host.OperatorAsync();
        var ids = new List<string>();
        foreach (var (slug, tier) in new[] { ("fm-pool", "basic"), ("fm-bridge", "standard"), ("fm-silo", "premium") })
        {
            ids.Add(await client.CreateActiveTenantAsync(slug, tier));
        }

        using var started = await client.PostAsync(new Uri("/v1/migrations", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var accepted = await started.JsonAsync();
        var id = accepted.GetProperty("id").GetString();
        Assert.Equal(id, accepted.GetProperty("operationId").GetString());
        Assert.Equal("fleet-migration", accepted.GetProperty("kind").GetString());
        Assert.Equal($"/v1/migrations/{id}", started.Headers.Location?.ToString());

        var run = await client.GetJsonAsync($"/v1/migrations/{id}?wait=30");
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        var progress = run.GetProperty("progress");
        Assert.Equal((4, 4, 4, 0), (progress.GetProperty("total").GetInt32(), progress.GetProperty("done").GetInt32(), progress.GetProperty("succeeded").GetInt32(), progress.GetProperty("failed").GetInt32()));
        var tenants = run.GetProperty("tenants").EnumerateArray().ToList();
        Assert.Equal("pool", tenants[0].GetProperty("target").GetString());
        Assert.Equal(ids.Order(), tenants.Skip(1).Select(t => t.GetProperty("tenantId").GetString()).Order());
        Assert.All(tenants, t => Assert.Equal("succeeded", t.GetProperty("status").GetString()));
        Assert.Equal("fm-silo", tenants.Single(t => t.GetProperty("slug").GetString() == "fm-silo").GetProperty("target").GetString());

        var failedOnly = await client.GetJsonAsync($"/v1/migrations/{id}?status=failed");
        Assert.Empty(failedOnly.GetProperty("tenants").EnumerateArray());
        using var badFilter = await client.GetAsync(new Uri($"/v1/migrations/{id}?status=done", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, badFilter.StatusCode);
        using var unknown = await client.GetAsync(new Uri($"/v1/migrations/{Guid.NewGuid()}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        var audit = await client.GetJsonAsync("/v1/audit?limit=200");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "migrations.run" && e.GetProperty("outcome").GetString() == "succeeded");
    }

    [Fact]
    public async Task Runs_are_listed_newest_first_page_by_page_and_one_runs_at_a_time()
    {
        await using var host = Host();
        using var client = await host.OperatorAsync();
        await client.CreateActiveTenantAsync("fm-list");
        var first = (await client.RunFleetMigrationAsync()).GetProperty("id").GetString();
        var second = (await client.RunFleetMigrationAsync()).GetProperty("id").GetString();

        var page = await client.GetJsonAsync("/v1/migrations?limit=1");
        Assert.Equal(second, Assert.Single(page.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Null, page.GetProperty("items")[0].GetProperty("tenants").ValueKind); // a list carries the progress, not every target
        var next = await client.GetJsonAsync($"/v1/migrations?limit=1&cursor={page.GetProperty("nextCursor").GetString()}");
        Assert.Equal(first, Assert.Single(next.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Null, next.GetProperty("nextCursor").ValueKind);
        using var badCursor = await client.GetAsync(new Uri("/v1/migrations?cursor=not-one", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, badCursor.StatusCode);

        // Two starts at once: one is accepted, the other is told which run is under way.
        var starts = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => client.PostAsync(new Uri("/v1/migrations", UriKind.Relative), null)));
        Assert.Equal([HttpStatusCode.Accepted, HttpStatusCode.Conflict], starts.Select(s => s.StatusCode).Order());
        var conflict = await starts.Single(s => s.StatusCode == HttpStatusCode.Conflict).JsonAsync();
        Assert.Equal("https://tenantry.dev/problems/migration-running", conflict.GetProperty("type").GetString());
        foreach (var s in starts)
        {
            s.Dispose();
        }
    }

    [Fact]
    public async Task A_run_cut_short_by_a_shutdown_is_finished_by_the_next_host()
    {
        string id;
        await using (var first = Host())
        {
            using var client = await first.OperatorAsync();
            for (var i = 0; i < 12; i++)
            {
                await client.CreateActiveTenantAsync($"fm-resume-{i}", i % 2 == 0 ? "basic" : "standard");
            }

            using var started = await client.PostAsync(new Uri("/v1/migrations", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
            id = (await started.JsonAsync()).GetProperty("id").GetString()!;
        }

        await using var second = Host();
        using var again = await second.OperatorAsync();
        var run = await again.GetJsonAsync($"/v1/migrations/{id}?wait=30");
        Assert.Equal("succeeded", run.GetProperty("status").GetString());
        Assert.Equal(13, run.GetProperty("progress").GetProperty("done").GetInt32());
        Assert.All(run.GetProperty("tenants").EnumerateArray(), t => Assert.Equal("succeeded", t.GetProperty("status").GetString()));
    }
}
