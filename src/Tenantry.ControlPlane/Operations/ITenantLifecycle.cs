using System.Data.Common;
using System.Text.Json.Nodes;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// What an operation does to its tenant, inside the operation's transaction. The Tenants feature
/// implements it over the table it owns, so operations never write the tenant's row themselves.
/// </summary>
public interface ITenantLifecycle
{
    /// <summary>The tenant, read in <paramref name="transaction"/> or, when it is null, outside any (a plain read).</summary>
    Task<Tenant?> GetAsync(DbConnection connection, DbTransaction? transaction, Guid tenantId);

    /// <summary>
    /// Moves <paramref name="tenant"/> to <paramref name="to"/> when <see cref="TenantLifecycle"/>
    /// allows it (else nothing happens), and audits the move as <paramref name="actor"/>.
    /// </summary>
    Task MoveAsync(DbConnection connection, DbTransaction transaction, Tenant tenant, TenantStatus to, string? reason, Guid operationId, string actor, DateTimeOffset now);

    /// <summary>Merges <paramref name="change"/> into the tenant's resources; a key set to null is removed.</summary>
    Task MergeResourcesAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, JsonObject change, DateTimeOffset now);

    /// <summary>
    /// Sets the tenant's tier and isolation model and merges <paramref name="resources"/> (a tier change's switch),
    /// publishing the tier change; nothing happens when the tenant already has them.
    /// </summary>
    Task ChangeTierAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, string tier, IsolationModel isolation, JsonObject resources, DateTimeOffset now);

    /// <summary>
    /// Merges <paramref name="resources"/> (a move's switch: its new <c>placement</c>, and <c>database</c> when the data
    /// moved) and publishes the move to another cell; nothing happens when the placement already names that cell.
    /// </summary>
    Task ChangeCellAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, JsonObject resources, Guid operationId, DateTimeOffset now);
}
