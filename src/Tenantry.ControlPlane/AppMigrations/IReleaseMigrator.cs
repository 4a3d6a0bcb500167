using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// Applies a registered release's forward-only SQL migrations to tenants according to their
/// isolation model: once to the shared pool for every pool tenant (with row-level security added
/// by Tenantry), in the tenant's schema for bridge, in the tenant's database (or file) for silo.
/// Idempotent: each target keeps a ledger (<c>tenantry_app_migrations</c>) and each migration
/// commits together with its ledger row, under a lock, so a retry, a crash or a second applier
/// never applies one twice; a migration that ran with other SQL (another checksum) is an error and
/// never runs again.
/// </summary>
public interface IReleaseMigrator
{
    /// <summary>Applies <paramref name="release"/>'s migrations that the tenant's target lacks (for a pool tenant: the pool's).</summary>
    /// <param name="release">A release with its migrations' SQL (<see cref="IAppRegistry.GetReleaseAsync"/>).</param>
    Task<ReleaseMigrationResult> ApplyAsync(TenantRef tenant, AppRelease release, CancellationToken cancellationToken = default);

    /// <summary>
    /// The fleet fan-out: <paramref name="release"/>'s migrations applied to every tenant, at most
    /// <paramref name="parallelism"/> targets at once, the pool once for all pool tenants. A failed
    /// tenant does not stop the others; each result carries its reason.
    /// </summary>
    /// <param name="onTenant">Called once per tenant as soon as its result is known (from several threads at once).</param>
    /// <returns>One result per tenant, in the order given.</returns>
    Task<IReadOnlyList<ReleaseMigrationResult>> ApplyAsync(
        IReadOnlyList<TenantRef> tenants,
        AppRelease release,
        int parallelism,
        Func<ReleaseMigrationResult, CancellationToken, Task>? onTenant = null,
        CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs the release's seed once for the tenant, inside its own scope (its session: on the pool
    /// with its tenant set, through row-level security or the SQLite guard), and records it with the
    /// seed in one transaction; a tenant that has this app's seed already (from any release) is left alone.
    /// </summary>
    Task<ReleaseSeedResult> SeedAsync(TenantRef tenant, AppRelease release, CancellationToken cancellationToken = default);
}

public enum ReleaseMigrationOutcome
{
    /// <summary>This call applied at least one migration.</summary>
    Applied,

    /// <summary>Every migration was applied already.</summary>
    UpToDate,

    /// <summary>The tenant has no database (yet, or any more): nothing to migrate.</summary>
    NoDatabase,

    Failed,
}

/// <summary>What applying a release did for one tenant.</summary>
public sealed record ReleaseMigrationResult
{
    public required Guid TenantId { get; init; }

    /// <summary>Where the migrations went: <c>pool</c> (shared by every pool tenant), or the tenant's slug.</summary>
    public required string Target { get; init; }

    public required ReleaseMigrationOutcome Outcome { get; init; }

    /// <summary>Migration ids this call applied, in order (for a pool tenant: applied to the pool by this call).</summary>
    public IReadOnlyList<string> Applied { get; init; } = [];

    /// <summary>Migrations found applied already, by an earlier or a concurrent applier.</summary>
    public int AlreadyApplied { get; init; }

    /// <summary>The migration that failed; later ones were not tried.</summary>
    public string? FailedMigration { get; init; }

    /// <summary>Why it failed, with the database's own message (never the SQL text).</summary>
    public string? Error { get; init; }

    /// <summary>True when trying again may succeed (the database was unreachable, a lock wait timed out); false for broken SQL, a broken pool rule, a changed migration.</summary>
    public bool Retryable { get; init; }

    public bool Succeeded => Outcome != ReleaseMigrationOutcome.Failed;
}

public enum ReleaseSeedOutcome
{
    Seeded,

    /// <summary>The tenant has this app's seed from an earlier call.</summary>
    AlreadySeeded,

    /// <summary>The release has no seed.</summary>
    NoSeed,

    NoDatabase,

    Failed,
}

/// <summary>What seeding did for one tenant.</summary>
public sealed record ReleaseSeedResult
{
    public required Guid TenantId { get; init; }

    public required ReleaseSeedOutcome Outcome { get; init; }

    public string? Error { get; init; }

    public bool Retryable { get; init; }

    public bool Succeeded => Outcome != ReleaseSeedOutcome.Failed;
}
