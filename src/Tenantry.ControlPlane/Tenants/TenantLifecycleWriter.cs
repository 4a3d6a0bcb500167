using System.Data.Common;
using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Events;
using Tenantry.ControlPlane.Operations;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>The tenant's row as operations change it (<see cref="ITenantLifecycle"/>); each move publishes its event.</summary>
internal sealed class TenantLifecycleWriter(IEventOutbox events) : ITenantLifecycle
{
    public Task<Tenant?> GetAsync(DbConnection connection, DbTransaction? transaction, Guid tenantId) =>
        TenantStore.GetAsync(connection, transaction, tenantId);

    public async Task MoveAsync(DbConnection connection, DbTransaction transaction, Tenant tenant, TenantStatus to, string? reason, Guid operationId, string actor, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        if (tenant.Status == to || !TenantLifecycle.CanMove(tenant.Status, to))
        {
            return;
        }

        var moved = tenant with { Status = to, StatusReason = reason, Version = tenant.Version + 1, UpdatedAt = now };
        await TenantStore.UpdateAsync(connection, transaction, moved, tenant.Version);
        await events.AppendAsync(connection, transaction, TenantEvents.Moved(moved, tenant.Status, operationId, reason), now);
        await AuditLog.AppendAsync(connection, transaction, AuditLog.By(actor, tenant.Id, "tenant.status", to.ToWire(),
            new JsonObject { ["from"] = tenant.Status.ToWire(), ["to"] = to.ToWire(), ["operationId"] = operationId.ToString(), ["reason"] = reason }, now));
    }

    public async Task MergeResourcesAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, JsonObject change, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(change);
        var tenant = await TenantStore.GetAsync(connection, transaction, tenantId);
        if (tenant is null)
        {
            return;
        }

        var resources = tenant.Resources.DeepClone().AsObject();
        foreach (var (key, value) in change)
        {
            if (value is null)
            {
                resources.Remove(key);
            }
            else
            {
                resources[key] = value.DeepClone();
            }
        }

        await TenantStore.UpdateAsync(connection, transaction, tenant with { Resources = resources, Version = tenant.Version + 1, UpdatedAt = now }, tenant.Version);
    }

    public async Task ChangeTierAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, string tier, IsolationModel isolation, JsonObject resources, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(resources);
        var tenant = await TenantStore.GetAsync(connection, transaction, tenantId);
        if (tenant is null || (tenant.Tier == tier && tenant.Isolation == isolation))
        {
            return;
        }

        var merged = tenant.Resources.DeepClone().AsObject();
        foreach (var (key, value) in resources)
        {
            if (value is null)
            {
                merged.Remove(key);
            }
            else
            {
                merged[key] = value.DeepClone();
            }
        }

        var changed = tenant with { Tier = tier, Isolation = isolation, Resources = merged, Version = tenant.Version + 1, UpdatedAt = now };
        await TenantStore.UpdateAsync(connection, transaction, changed, tenant.Version);
        await events.AppendAsync(connection, transaction, TenantEvents.TierChanged(changed, tenant.Tier), now);
    }

    public async Task ChangeCellAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, JsonObject resources, Guid operationId, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(resources);
        var tenant = await TenantStore.GetAsync(connection, transaction, tenantId);
        var previous = tenant?.Resources["placement"]?.DeepClone();
        if (tenant is null || JsonNode.DeepEquals(previous, resources["placement"]))
        {
            return;
        }

        var merged = tenant.Resources.DeepClone().AsObject();
        foreach (var (key, value) in resources)
        {
            merged[key] = value?.DeepClone();
        }

        var changed = tenant with { Resources = merged, Version = tenant.Version + 1, UpdatedAt = now };
        await TenantStore.UpdateAsync(connection, transaction, changed, tenant.Version);
        await events.AppendAsync(connection, transaction, TenantEvents.CellChanged(changed, previous as JsonObject, operationId), now);
    }
}
