using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.Instances;

/// <summary>
/// Compute on one machine: pool and bridge tenants are routed to the shared instances of every app,
/// silo tenants get a dedicated instance of every app, each a local process that
/// <see cref="LocalAppSupervisor"/> keeps running (stopped while the tenant is suspended, removed at
/// offboarding). The routing table lives in the control-plane store, where the gateway reads it.
/// </summary>
internal sealed class LocalComputeProvider(IControlPlaneDatabase db, TimeProvider time, AppInstances instances) : ITenantComputeProvider
{
    public async Task<JsonObject> DeployAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var dedicated = tenant.Isolation == IsolationModel.Silo;
        await db.WriteAsync(
            async (c, tx) =>
            {
                if (await RouteStore.UpstreamAsync(c, tx, tenant.Id) is null)
                {
                    await RouteStore.InsertAsync(c, tx, tenant.Id, tenant.Slug, dedicated, dedicated ? "dedicated" : "shared", time.GetUtcNow());
                }
            },
            cancellationToken);

        var deployed = dedicated ? await instances.DeployDedicatedAsync(tenant, cancellationToken) : [];
        if (!dedicated)
        {
            await instances.EnsureSharedAsync(cancellationToken);
        }

        var apps = new JsonObject();
        foreach (var instance in deployed)
        {
            apps[instance.App] = new JsonObject { ["release"] = instance.Release, ["upstream"] = instance.Upstream.ToString() };
        }

        return new JsonObject { ["provider"] = "local", ["mode"] = dedicated ? "dedicated" : "shared", ["apps"] = apps };
    }

    public async Task SetRoutingAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken)
    {
        await db.WriteAsync(
            (c, tx) => RouteStore.SetEnabledAsync(c, tx, tenant.Id, enabled, time.GetUtcNow()),
            cancellationToken);
        if (tenant.Isolation == IsolationModel.Silo)
        {
            // A suspended silo tenant's instances are stopped; reactivation starts them again.
            await instances.SetDedicatedRunningAsync(tenant, enabled, cancellationToken);
        }
    }

    public Task RemoveDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken) =>
        instances.DeleteDedicatedAsync(tenant, cancellationToken);

    public async Task RestartDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        // Stopped and started again: each start reads the tenant's database where its placement says now.
        await instances.SetDedicatedRunningAsync(tenant, running: false, cancellationToken);
        await instances.SetDedicatedRunningAsync(tenant, running: true, cancellationToken);
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        await instances.DeleteDedicatedAsync(tenant, cancellationToken);
        await db.WriteAsync((c, tx) => RouteStore.DeleteAsync(c, tx, tenant.Id), cancellationToken);
    }
}

public static class LocalComputeExtensions
{
    /// <summary>Compute on this machine: every app's shared instances and silo tenants' dedicated instances as supervised local processes.</summary>
    public static TenantryBuilder AddLocalCompute(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<LocalComputeProvider>();
        builder.Services.AddOptions<LocalComputeOptions>().BindConfiguration(LocalComputeOptions.Section).ValidateSettings(LocalComputeOptions.Section).ValidateOnStart();
        builder.Services.TryAddSingleton<LocalAppSupervisor>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LocalAppSupervisor>());
        builder.Services.TryAddSingleton<AppInstances>();
        builder.Services.TryAddSingleton<AppRoutes>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AppInstances>());
        // Local instances move with their node: placed on one, re-placed when it dies or leaves.
        builder.Services.AddSingleton<Nodes.INodeHandover>(sp => sp.GetRequiredService<AppInstances>());
        builder.Services.TryAddSingleton<Nodes.INodeLoad>(sp => sp.GetRequiredService<AppInstances>());
        return builder;
    }
}
