using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Tenantry.ControlPlane.Operations;

namespace Tenantry.ControlPlane.Tenants;

/// <summary><c>POST /v1/tenants/{id}/tier</c>: the tier to change to.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ChangeTierRequest(string? Tier);

/// <summary><c>POST /v1/tenants/{id}/move</c>: the cell to move to.</summary>
public sealed record MoveTenantRequest(string? Cell);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateTenantRequest(string? Name, string? Slug, string? Tier, string? AdminEmail, JsonObject? Config);

public sealed record TenantResponse(
    string Id,
    string Slug,
    string Name,
    string Tier,
    string Isolation,
    string Status,
    string? StatusReason,
    string AdminEmail,
    JsonObject Config,
    JsonObject Resources,
    string? OperationId,
    long Version,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    public static TenantResponse From(Tenant t) => new(
        t.Id.ToString(), t.Slug, t.Name, t.Tier, t.Isolation.ToWire(), t.Status.ToWire(), t.StatusReason, t.AdminEmail,
        t.Config, t.Resources, t.CurrentOperationId?.ToString(), t.Version, t.CreatedAt, t.UpdatedAt);
}
