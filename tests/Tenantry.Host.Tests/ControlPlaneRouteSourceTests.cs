using Tenantry.ControlPlane.Routing;

namespace Tenantry.Host.Tests;

/// <summary>The in-process gateway's route source reads the control plane's routing table once per refresh.</summary>
public sealed class ControlPlaneRouteSourceTests
{
    [Fact]
    public async Task A_refresh_reads_the_routing_table_once_and_takes_routes_and_apps_from_that_read()
    {
        var tenant = Guid.CreateVersion7();
        var table = new CountingRouteTable(
            new TenantRouting(
                [new TenantRouteEntry(tenant, "acme", "premium", "silo", "active", "dedicated", "shared", true, "premium", null,
                    new Dictionary<string, string> { ["notes"] = "http://127.0.0.1:5501/" })],
                [new AppRouteEntry("notes", "/notes", ["http://127.0.0.1:5400/"])]),
            new TenantRouting([], [new AppRouteEntry("notes", "/notes", ["http://127.0.0.1:5400/", "http://127.0.0.1:5401/"])]));
        var source = new ControlPlaneRouteSource(table, new RouteChanges());

        // As the gateway's refresher asks: the routes, then the apps.
        var routes = await source.LoadAsync(CancellationToken.None);
        var apps = await source.LoadAppsAsync(CancellationToken.None);

        Assert.Equal(1, table.Reads);
        var route = Assert.Single(routes);
        Assert.Equal(tenant, route.TenantId);
        Assert.Equal(new Uri("http://127.0.0.1:5501/"), route.Apps!["notes"]);
        Assert.Equal([new Uri("http://127.0.0.1:5400/")], Assert.Single(apps!).Shared);

        // The next refresh reads again, once, and shows what changed.
        Assert.Empty(await source.LoadAsync(CancellationToken.None));
        apps = await source.LoadAppsAsync(CancellationToken.None);
        Assert.Equal(2, table.Reads);
        Assert.Equal(2, Assert.Single(apps!).Shared.Count);
    }

    /// <summary>A routing table that answers each read with the next of <c>reads</c> and counts the reads.</summary>
    private sealed class CountingRouteTable(params TenantRouting[] reads) : ITenantRouteTable
    {
        public int Reads { get; private set; }

        public Task<TenantRouting> ReadAsync(CancellationToken cancellationToken) => Task.FromResult(reads[Reads++]);
    }
}
