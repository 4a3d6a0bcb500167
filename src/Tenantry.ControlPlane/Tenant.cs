using System.Text.Json.Nodes;

namespace Tenantry.ControlPlane;

/// <summary>A tenant as the registry stores it.</summary>
public sealed record Tenant
{
    public required Guid Id { get; init; }
    public required string Slug { get; init; }
    public required string Name { get; init; }
    public required string Tier { get; init; }
    public required IsolationModel Isolation { get; init; }
    public required TenantStatus Status { get; init; }
    public string? StatusReason { get; init; }
    public required string AdminEmail { get; init; }
    public required JsonObject Config { get; init; }
    public required JsonObject Resources { get; init; }
    public required long Version { get; init; }
    public Guid? CurrentOperationId { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; init; }

    public string ETag => $"\"{Version}\"";
}

/// <summary>Which tenants a list returns: by status, tier and a substring of slug or name, after a cursor, at most <c>Limit</c>.</summary>
public sealed record TenantFilter(TenantStatus? Status, string? Tier, string? Search, Guid? After, int Limit);
