namespace Tenantry.AspNetCore;

/// <summary>The tenant (and caller) of the current request, as the gateway resolved it.</summary>
public interface ITenantContext
{
    /// <summary>The tenant's id.</summary>
    Guid TenantId { get; }

    /// <summary>The tenant's slug: its short, unique, URL-safe name.</summary>
    string Slug { get; }

    /// <summary>The tenant's tier (<c>basic</c>, <c>standard</c>, <c>premium</c>, …).</summary>
    string Tier { get; }

    /// <summary>How the tenant's data is kept apart: pool, bridge or silo.</summary>
    IsolationModel Isolation { get; }

    /// <summary>The token's subject: a user (<c>{tenantId}:{email}</c>) or a machine client id.</summary>
    string Subject { get; }

    /// <summary>The caller's roles (possibly none).</summary>
    IReadOnlyList<string> Roles { get; }
}

/// <summary>The tenant context carried from the gateway to the upstream app.</summary>
public sealed record TenantContext : ITenantContext
{
    /// <inheritdoc/>
    public required Guid TenantId { get; init; }

    /// <inheritdoc/>
    public required string Slug { get; init; }

    /// <inheritdoc/>
    public required string Tier { get; init; }

    /// <inheritdoc/>
    public required IsolationModel Isolation { get; init; }

    /// <inheritdoc/>
    public required string Subject { get; init; }

    /// <inheritdoc/>
    public required IReadOnlyList<string> Roles { get; init; }

    /// <summary>True when the caller has <paramref name="role"/> (exact case).</summary>
    public bool IsInRole(string role) => Roles.Contains(role, StringComparer.Ordinal);
}
