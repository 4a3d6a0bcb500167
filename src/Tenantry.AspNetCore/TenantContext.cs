namespace Tenantry.AspNetCore;

/// <summary>The tenant (and caller) of the current request, as the gateway resolved it.</summary>
public interface ITenantContext
{
    Guid TenantId { get; }

    string Slug { get; }

    string Tier { get; }

    IsolationModel Isolation { get; }

    /// <summary>The token's subject: a user (<c>{tenantId}:{email}</c>) or a machine client id.</summary>
    string Subject { get; }

    IReadOnlyList<string> Roles { get; }
}

/// <summary>The tenant context carried from the gateway to the upstream app.</summary>
public sealed record TenantContext : ITenantContext
{
    public required Guid TenantId { get; init; }

    public required string Slug { get; init; }

    public required string Tier { get; init; }

    public required IsolationModel Isolation { get; init; }

    public required string Subject { get; init; }

    public required IReadOnlyList<string> Roles { get; init; }

    public bool IsInRole(string role) => Roles.Contains(role, StringComparer.Ordinal);
}
