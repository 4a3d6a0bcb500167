using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Events;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>The event each change of a tenant's status or tier publishes (docs/events.md).</summary>
internal static class TenantEvents
{
    /// <summary>The type of a move from <paramref name="from"/> to <paramref name="to"/> made by an operation or a request.</summary>
    public static string TypeOfMove(TenantStatus from, TenantStatus to) => (from, to) switch
    {
        (TenantStatus.Failed, not TenantStatus.Offboarding) => EventTypes.TenantRetrying,
        (_, TenantStatus.Active) when from == TenantStatus.Suspended => EventTypes.TenantReactivated,
        (_, TenantStatus.Active) => EventTypes.TenantActivated,
        (_, TenantStatus.Suspended) => EventTypes.TenantSuspended,
        (_, TenantStatus.Offboarding) => EventTypes.TenantOffboarding,
        (_, TenantStatus.Offboarded) => EventTypes.TenantOffboarded,
        (_, TenantStatus.Failed) => EventTypes.TenantFailed,
        (_, TenantStatus.Provisioning) => EventTypes.TenantRetrying,
        _ => throw new ArgumentOutOfRangeException(nameof(to), $"No event for a move from {from.ToWire()} to {to.ToWire()}."),
    };

    public static OutboxEvent Created(Tenant tenant, Guid operationId) =>
        new(EventTypes.TenantCreated, tenant.Id, Data(tenant, null, operationId, null));

    /// <summary>The tenant has moved from <paramref name="from"/> to its current status.</summary>
    public static OutboxEvent Moved(Tenant moved, TenantStatus from, Guid? operationId, string? reason) =>
        new(TypeOfMove(from, moved.Status), moved.Id, Data(moved, from, operationId, reason));

    public static OutboxEvent TierChanged(Tenant changed, string previousTier)
    {
        var data = Data(changed, null, null, null);
        data["previousTier"] = previousTier;
        return new(EventTypes.TenantTierChanged, changed.Id, data);
    }

    /// <summary>The tenant moved to another cell (a <c>move</c> operation's switch).</summary>
    public static OutboxEvent CellChanged(Tenant moved, JsonObject? previousPlacement, Guid operationId)
    {
        var data = Data(moved, null, operationId, null);
        data["placement"] = moved.Resources["placement"]?.DeepClone();
        data["previousPlacement"] = previousPlacement?.DeepClone();
        return new(EventTypes.TenantMoved, moved.Id, data);
    }

    private static JsonObject Data(Tenant tenant, TenantStatus? from, Guid? operationId, string? reason)
    {
        var data = new JsonObject
        {
            ["tenantId"] = tenant.Id.ToString(),
            ["slug"] = tenant.Slug,
            ["name"] = tenant.Name,
            ["tier"] = tenant.Tier,
            ["status"] = tenant.Status.ToWire(),
        };
        if (from is { } previous)
        {
            data["previousStatus"] = previous.ToWire();
        }

        if (operationId is { } op)
        {
            data["operationId"] = op.ToString();
        }

        if (reason is not null)
        {
            data["reason"] = reason;
        }

        return data;
    }
}
