using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Tenantry.ControlPlane.Operations;

namespace Tenantry.ControlPlane.Tenants;

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

public sealed record OperationStepResponse(string Name, string Status, int Attempts, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, string? Error);

public sealed record OperationResponse(
    string Id,
    string Kind,
    string TenantId,
    string Status,
    IReadOnlyList<OperationStepResponse> Steps,
    string? Error,
    string Actor,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt)
{
    public static OperationResponse From(Operation op) => new(
        op.Id.ToString(),
        op.Kind.ToWire(),
        op.TenantId.ToString(),
        op.Status.ToWire(),
        [.. op.Steps.Select(s => new OperationStepResponse(s.Name, s.Status.ToWire(), s.Attempts, s.StartedAt, s.FinishedAt, s.Error))],
        op.Error,
        op.Actor,
        op.CreatedAt,
        op.StartedAt,
        op.FinishedAt);
}
