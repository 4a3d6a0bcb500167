using System.Data.Common;
using System.IO.Compression;
using System.Text.Json.Nodes;
using Tenantry.Data;
using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.Providers;

/// <summary>What a provider needs to know of the tenant it works for.</summary>
public sealed record TenantRef(Guid Id, string Slug, string Name, string Tier, IsolationModel Isolation, string AdminEmail)
{
    /// <summary>A reference that only places the tenant's data (for <see cref="ITenantDatabaseProvider.ConnectAsync"/>): name, tier and e-mail are not known.</summary>
    public static TenantRef ForData(Guid id, string slug, IsolationModel isolation) => new(id, slug, slug, "", isolation, "");

    /// <summary>
    /// The database server (by name) that holds this copy of the tenant's data, in place of the one its placement
    /// names: a move between cells addresses the source and the target this way while both exist. Null: where the
    /// placement says. Engines without servers ignore it.
    /// </summary>
    public string? Server { get; init; }
}

/// <summary>A step failure that retrying cannot fix (a conflict, a bad input). Anything else is retried.</summary>
public sealed class PermanentStepException(string message) : Exception(message);

/// <summary>
/// Every provider call is idempotent: called again after a crash, it finds its earlier work and
/// neither fails nor makes a second copy. Each returns a description of what it made, which the
/// tenant shows under <c>resources</c>.
/// </summary>
public interface ITenantDatabaseProvider
{
    Task<JsonObject> CreateAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>Writes the tenant's rows into <paramref name="archive"/> under <c>database/</c>.</summary>
    Task ExportAsync(TenantRef tenant, ZipArchive archive, CancellationToken cancellationToken);

    Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>
    /// Where the tenant's data lives, with the credentials a tenant session needs (hand it to
    /// <see cref="ITenantDataSource.OpenSessionAsync"/>); null when the tenant has no database (yet or any more).
    /// </summary>
    Task<TenantDataContext?> ConnectAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>Applies the tenant app schema to the pool and to each given tenant's database; one failed tenant does not stop the others.</summary>
    Task<MigrationReport> MigrateAsync(IReadOnlyList<TenantRef> tenants, CancellationToken cancellationToken);

    /// <summary>
    /// Where changes to the tenant's tables are made, reached the way provisioning reaches it: the
    /// shared pool for a pool tenant (one place for all of them), else the tenant's own schema,
    /// database or file. Null when the tenant has none (yet, or any more).
    /// </summary>
    Task<MigrationTarget?> MigrationTargetAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>
    /// A new, empty, pool-shaped place on the engine tenants use, to try migrations on and throw
    /// away: on SQLite a new file (the caller deletes it), on PostgreSQL a schema name on the pool
    /// server that the caller creates inside a transaction it rolls back.
    /// </summary>
    MigrationTarget ScratchTarget();

    /// <summary>
    /// Raw access to the place that holds the tenant's rows in the given isolation model, for a data move: the
    /// shared pool (rows filtered by <c>tenant_id</c>), the tenant's schema, database or file. Opened as the
    /// provisioning role, so the mover can install triggers and copy past row-level security. Null when it does not exist.
    /// </summary>
    Task<TenantDataPlace?> PlaceAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>
    /// Drops only the tenant's data in the given isolation model (its pool rows, schema, database or file), keeping
    /// its credentials and server placement for the model it moves to; idempotent.
    /// </summary>
    Task DropPlaceAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>The server that holds the tenant's own data now (its placement); null for the shared pool and engines without servers.</summary>
    Task<string?> ServerOfAsync(TenantRef tenant, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    /// <summary>
    /// The server a copy of the tenant's data would go to in <paramref name="cell"/>: its current server when the cell
    /// uses it (nothing to move), else the cell's server with the lowest share of its capacity in use. Null for the
    /// shared pool and engines without servers; records nothing.
    /// </summary>
    Task<string?> ChooseServerAsync(TenantRef tenant, string cell, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

    /// <summary>Points the tenant's placement at <paramref name="server"/>, in the caller's transaction (a move's switch).</summary>
    Task SetServerAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, string server, DateTimeOffset now) => Task.CompletedTask;
}

/// <summary>Where a tenant's rows are, opened raw for a data move (see <see cref="ITenantDatabaseProvider.PlaceAsync"/>).</summary>
/// <param name="Engine"><c>sqlite</c> or <c>postgresql</c>.</param>
/// <param name="Shared">True for the pool: other tenants' rows are there too, told apart by <c>tenant_id</c>.</param>
/// <param name="Schema">The PostgreSQL schema of the tenant's tables; null on SQLite.</param>
/// <param name="Name">Where it is, for messages (never credentials).</param>
/// <param name="OpenAsync">A new open connection (the caller disposes it).</param>
public sealed record TenantDataPlace(string Engine, bool Shared, string? Schema, string Name, Func<CancellationToken, Task<DbConnection>> OpenAsync);

public interface ITenantStorageProvider
{
    Task<JsonObject> ProvisionAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>Writes the tenant's files (all but its exports) into <paramref name="archive"/> under <c>files/</c>.</summary>
    Task ExportAsync(TenantRef tenant, ZipArchive archive, CancellationToken cancellationToken);

    /// <summary>Stores a finished export archive in the tenant's export folder and says where it is.</summary>
    Task<string> SaveExportAsync(TenantRef tenant, string name, Func<Stream, Task> write, CancellationToken cancellationToken);

    /// <summary>Deletes the tenant's files but keeps its exports.</summary>
    Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken);
}

public interface ITenantComputeProvider
{
    Task<JsonObject> DeployAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>Turns the tenant's route on or off; an off route forwards nothing.</summary>
    Task SetRoutingAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken);

    Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>Stops and removes the tenant's dedicated instances but keeps its route (a tier change away from silo).</summary>
    Task RemoveDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>
    /// Starts the tenant's dedicated instances again so they read where its database is now (a move between cells
    /// changed its server); the route stays. By default they are removed and deployed again.
    /// </summary>
    async Task RestartDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        await RemoveDedicatedAsync(tenant, cancellationToken);
        await DeployAsync(tenant, cancellationToken);
    }
}

public interface ITenantIdentityProvider
{
    Task<JsonObject> ConfigureAsync(TenantRef tenant, CancellationToken cancellationToken);

    /// <summary>Disables (or re-enables) every user and machine client of the tenant.</summary>
    Task SetAccessAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken);
}

public interface INotificationProvider
{
    /// <summary>Queues one message of <paramref name="kind"/> (<see cref="NotificationKinds"/>); the same <paramref name="messageKey"/> is queued once only.</summary>
    Task NotifyAsync(TenantRef tenant, string messageKey, string kind, JsonObject payload, CancellationToken cancellationToken);
}

/// <summary>What the notify step tells a tenant's admin.</summary>
public static class NotificationKinds
{
    /// <summary>The tenant is ready; the admin gets a one-time link to choose a password.</summary>
    public const string Welcome = "welcome";
    public const string Suspended = "suspended";
    public const string Reactivated = "reactivated";
}
