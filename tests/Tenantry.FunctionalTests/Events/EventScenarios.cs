using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Tenantry.FunctionalTests.Billing;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Events;

/// <summary>
/// The event catalog through the real API: every change of state publishes exactly one event, in the
/// transaction of the change. Run on the embedded SQLite store and on a private PostgreSQL.
/// </summary>
public abstract class EventScenarios : IAsyncLifetime
{
    private TenantryFactory _root = null!;
    private WebApplicationFactory<Program> _app = null!;

    protected HttpClient Client { get; private set; } = null!;

    protected string DataDir => _root.DataDir;

    /// <summary>A PostgreSQL connection string for the control-plane store, or null for SQLite.</summary>
    protected abstract Task<string?> StoreAsync();

    public async Task InitializeAsync()
    {
        var store = await StoreAsync();
        _root = new TenantryFactory();
        _app = _root.WithWebHostBuilder(b =>
        {
            // A tier that shares basic's isolation, so a tier change needs no data move.
            b.UseSetting("Tenantry:Tiers:starter", "pool");
            if (store is not null)
            {
                b.UseSetting("Tenantry:Store", store);
                b.UseSetting("Tenantry:MasterKey", TenantryHostOptions.TestMasterKey);
            }
        });
        Client = _app.CreateClient();
        var token = await TenantryFactory.TokenAsync(Client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await _app.DisposeAsync();
        await _root.DisposeAsync();
    }

    [Fact]
    public async Task Every_state_change_of_a_tenant_publishes_exactly_one_event_in_order()
    {
        var id = await Client.CreateActiveTenantAsync("ev-life");
        await PostAsync($"/v1/tenants/{id}/suspend");
        await Client.WaitForStatusAsync(id, "suspended");
        await PostAsync($"/v1/tenants/{id}/reactivate");
        await Client.WaitForStatusAsync(id, "active");

        using (var read = await Client.GetAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative)))
        using (var patch = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{id}") { Content = JsonContent.Create(new { tier = "starter", name = "Renamed" }) })
        {
            patch.Headers.TryAddWithoutValidation("If-Match", read.Headers.ETag!.Tag);
            using var patched = await Client.SendAsync(patch);
            Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        }

        // A change that is not one of state (the name alone) publishes nothing.
        using (var read = await Client.GetAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative)))
        using (var patch = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{id}") { Content = JsonContent.Create(new { name = "Renamed again" }) })
        {
            patch.Headers.TryAddWithoutValidation("If-Match", read.Headers.ETag!.Tag);
            using var patched = await Client.SendAsync(patch);
            Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        }

        using (var delete = await Client.DeleteAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Accepted, delete.StatusCode);
        }

        await Client.WaitForStatusAsync(id, "offboarded");

        var events = await EventsAsync(id);
        Assert.Equal(
            [
                "tenant.created", "tenant.activated", "operation.succeeded",
                "tenant.suspended", "operation.succeeded",
                "tenant.reactivated", "operation.succeeded",
                "tenant.tier-changed",
                "tenant.offboarding", "tenant.offboarded", "operation.succeeded",
            ],
            events.Select(e => e.GetProperty("type").GetString()!).ToArray());

        // CloudEvents 1.0, about the tenant, each with its own id and the outbox's order.
        Assert.All(events, e =>
        {
            Assert.Equal("1.0", e.GetProperty("specversion").GetString());
            Assert.Equal("/tenantry/control-plane", e.GetProperty("source").GetString());
            Assert.Equal(id, e.GetProperty("subject").GetString());
            Assert.Equal("application/json", e.GetProperty("datacontenttype").GetString());
            Assert.Equal(id, e.GetProperty("data").GetProperty("tenantId").GetString());
            Assert.True(DateTimeOffset.TryParse(e.GetProperty("time").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _));
        });
        Assert.Equal(events.Count, events.Select(e => e.GetProperty("id").GetString()).Distinct().Count());
        Assert.Equal(events.Select(e => e.GetProperty("sequence").GetInt64()).Order(), events.Select(e => e.GetProperty("sequence").GetInt64()));

        var tier = events.Single(e => e.GetProperty("type").GetString() == "tenant.tier-changed").GetProperty("data");
        Assert.Equal("starter", tier.GetProperty("tier").GetString());
        Assert.Equal("basic", tier.GetProperty("previousTier").GetString());
        var suspended = events.Single(e => e.GetProperty("type").GetString() == "tenant.suspended").GetProperty("data");
        Assert.Equal("suspended", suspended.GetProperty("status").GetString());
        Assert.Equal("active", suspended.GetProperty("previousStatus").GetString());
        Assert.Equal(
            ["onboarding", "suspension", "reactivation", "offboarding"],
            events.Where(e => e.GetProperty("type").GetString() == "operation.succeeded").Select(e => e.GetProperty("data").GetProperty("kind").GetString()!).ToArray());
    }

    [Fact]
    public async Task A_failed_operation_and_its_retry_publish_the_failure_and_the_recovery()
    {
        // A real fault: a file sits where the tenant's storage folder must go.
        var blocker = Path.Combine(DataDir, "tenants", "ev-blocked");
        Directory.CreateDirectory(Path.GetDirectoryName(blocker)!);
        await File.WriteAllTextAsync(blocker, "in the way");
        using var created = await Client.CreateTenantAsync(new { name = "Blocked", slug = "ev-blocked", tier = "basic", adminEmail = "a@ev-blocked.test" });
        var body = await created.JsonAsync();
        var id = body.GetProperty("id").GetString()!;
        await Client.WaitForStatusAsync(id, "failed");

        var failed = await EventsAsync(id);
        Assert.Equal(["tenant.created", "tenant.failed", "operation.failed"], failed.Select(e => e.GetProperty("type").GetString()!).ToArray());
        Assert.Equal("provision-storage", failed[2].GetProperty("data").GetProperty("step").GetString());
        Assert.Contains("provision-storage", failed[1].GetProperty("data").GetProperty("reason").GetString(), StringComparison.Ordinal);

        File.Delete(blocker);
        await PostAsync($"/v1/operations/{body.GetProperty("operationId").GetString()}/retry");
        await Client.WaitForStatusAsync(id, "active");
        var all = await EventsAsync(id);
        Assert.Equal(
            ["tenant.created", "tenant.failed", "operation.failed", "tenant.retrying", "tenant.activated", "operation.succeeded"],
            all.Select(e => e.GetProperty("type").GetString()!).ToArray());
        Assert.Equal("provisioning", all[3].GetProperty("data").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Refused_requests_publish_nothing_and_the_catalog_is_listed()
    {
        var id = await Client.CreateActiveTenantAsync("ev-refused");
        using (var refused = await Client.PostAsync(new Uri($"/v1/tenants/{id}/reactivate", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        }

        Assert.Equal(3, (await EventsAsync(id)).Count);

        var types = (await Client.GetJsonAsync("/v1/events/types")).EnumerateArray().Select(t => t.GetProperty("type").GetString()).ToList();
        Assert.Contains("tenant.activated", types);
        Assert.Contains("invoice.finalized", types);
        using var unknown = await Client.GetAsync(new Uri("/v1/events?type=tenant.exploded", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        using var badCursor = await Client.GetAsync(new Uri("/v1/events?cursor=%%%", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, badCursor.StatusCode);
    }

    /// <summary>The tenant's events, oldest first, read through the API page by page.</summary>
    protected async Task<List<JsonElement>> EventsAsync(string tenant)
    {
        var items = new List<JsonElement>();
        string? cursor = null;
        for (var page = 0; page < 20; page++)
        {
            var body = await Client.GetJsonAsync($"/v1/events?tenantId={tenant}&limit=4" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}"));
            items.AddRange(body.GetProperty("items").EnumerateArray());
            if (body.GetProperty("nextCursor").ValueKind == JsonValueKind.Null)
            {
                break;
            }

            cursor = body.GetProperty("nextCursor").GetString();
        }

        items.Reverse();
        return items;
    }

    private async Task PostAsync(string path)
    {
        using var response = await Client.PostAsync(new Uri(path, UriKind.Relative), null);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
}

[Collection(SoloCollection.Name)]
public sealed class EventsOnSqliteTests : EventScenarios
{
    protected override Task<string?> StoreAsync() => Task.FromResult<string?>(null);
}

/// <summary>The event scenarios with the control-plane store on PostgreSQL (<c>Tenantry:Store</c> set).</summary>
[Collection(SoloCollection.Name)]
public sealed class EventsOnPostgresTests(BillingPostgresFixture fixture) : EventScenarios, IClassFixture<BillingPostgresFixture>
{
    protected override async Task<string?> StoreAsync() => await fixture.NewDatabaseAsync();
}
