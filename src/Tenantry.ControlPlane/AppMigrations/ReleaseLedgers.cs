using Tenantry.ControlPlane.Apps;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// The two tables each target keeps of what the apps' releases did there, next to the app's own
/// tables (the pool's schema, the bridge schema, the silo database, the SQLite file):
/// <c>tenantry_app_migrations (app, id, checksum, release_version, applied_at)</c>, one row per
/// applied migration; <c>tenantry_app_seeds</c>, one row per tenant and app whose seed ran (on
/// the pool keyed by <c>tenant_id</c> and written through the tenant's own session).
/// </summary>
internal static class ReleaseLedgers
{
    public const string Migrations = "tenantry_app_migrations";
    public const string Seeds = "tenantry_app_seeds";

    public static ChangedMigrationException Changed(ReleaseMigration migration, string appliedChecksum) => new(
        $"migration '{migration.Id}' was applied with checksum {appliedChecksum[..Math.Min(12, appliedChecksum.Length)]}…, but this release has {migration.Checksum[..12]}…; a migration that ran never changes and never runs again: add a new one");
}

/// <summary>Where a check on a scratch database stopped: in a migration (its id), or in the seed.</summary>
internal sealed record ScratchFailure(string? MigrationId, bool InSeed, ReleaseSqlFailure Failure);

/// <summary>What a run needs of a release: the app whose ledger rows it writes, the version it records, the migrations in order.</summary>
internal sealed record ReleaseRef(string App, string Version, IReadOnlyList<ReleaseMigration> Migrations)
{
    public static ReleaseRef Of(AppRelease release) => new(release.App, release.Version, release.Migrations);
}
