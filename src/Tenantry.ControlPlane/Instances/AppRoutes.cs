using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.Instances;

/// <summary>The apps' routes from the registry and the serving instances.</summary>
internal sealed class AppRoutes(IControlPlaneDatabase db, IAppRegistry apps) : IAppRoutes
{
    public async Task<(IReadOnlyList<AppRouteEntry> Apps, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, string>> Dedicated)> LoadAsync(CancellationToken cancellationToken)
    {
        var registered = await apps.ListAsync(cancellationToken);
        var serving = (await db.ReadAsync(c => InstanceStore.ListAsync(c, null), cancellationToken)).Where(i => i.Serving).ToList();
        var entries = registered.Select(a => new AppRouteEntry(
            a.Name, a.RoutePrefix, [.. serving.Where(i => !i.Dedicated && i.App == a.Name).OrderBy(i => i.Slot).Select(i => i.Upstream.ToString())])).ToList();
        var dedicated = serving.Where(i => i.Dedicated)
            .GroupBy(i => i.TenantId!.Value)
            .ToDictionary(g => g.Key, g => (IReadOnlyDictionary<string, string>)g.ToDictionary(i => i.App, i => i.Upstream.ToString(), StringComparer.Ordinal));
        return (entries, dedicated);
    }
}
