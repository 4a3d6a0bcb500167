using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Migrations;

/// <summary>The wire names of a fleet migration's and a target's status (those of an operation).</summary>
public static class FleetMigrationStatus
{
    public const string Pending = "pending";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    /// <summary>A target whose tenant was offboarded (or removed) before its turn.</summary>
    public const string Skipped = "skipped";
}

/// <summary>A fleet migration: its counters and where it is.</summary>
internal sealed record FleetMigration
{
    public required Guid Id { get; init; }
    public required string Status { get; init; }
    public required string Schema { get; init; }
    public required int LatestVersion { get; init; }
    public required int Total { get; init; }
    public required int Done { get; init; }
    public required int Failed { get; init; }
    public string? Error { get; init; }
    public required string Actor { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }

    public bool Finished => Status is FleetMigrationStatus.Succeeded or FleetMigrationStatus.Failed;
}

/// <summary>One target of a fleet migration: the pool (no tenant) or a tenant; <see cref="Result"/> is its JSON report once done.</summary>
internal sealed record FleetMigrationTarget(Guid MigrationId, int Ordinal, Guid? TenantId, string? Slug, string Status, string? Error, string? Result, DateTimeOffset? FinishedAt);

/// <summary>A host's hold on a fleet migration; <see cref="Token"/> grows with every take, so a stale holder is fenced out.</summary>
internal readonly record struct FleetMigrationLease(Guid Id, string Owner, long Token);

/// <summary>Fleet migrations and their targets. Callers own the transaction.</summary>
internal static class FleetMigrationStore
{
    public static SchemaPart Schema { get; } = SchemaPart.Portable("FleetMigrations", """

        -- Fleet migrations (Migrations/): the tenant schema and current app releases applied to every tenant in the background.
        -- active is 'active' while one is pending or running and NULL after: at most one at a time.
        CREATE TABLE IF NOT EXISTS fleet_migrations (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            active TEXT NULL UNIQUE,
            schema_name TEXT NOT NULL,
            latest_version INTEGER NOT NULL,
            total INTEGER NOT NULL,
            done INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            error TEXT NULL,
            actor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT NULL,
            finished_at TEXT NULL,
            lease_owner TEXT NULL,
            lease_until TEXT NULL,
            lease_token BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE IF NOT EXISTS fleet_migration_targets (
            migration_id TEXT NOT NULL REFERENCES fleet_migrations(id),
            ordinal INTEGER NOT NULL,
            tenant_id TEXT NULL,
            slug TEXT NULL,
            status TEXT NOT NULL,
            error TEXT NULL,
            result TEXT NULL,
            finished_at TEXT NULL,
            PRIMARY KEY (migration_id, ordinal)
        );
        CREATE INDEX IF NOT EXISTS fleet_migration_targets_status ON fleet_migration_targets(migration_id, status, ordinal);
        """);

    private const string Columns = "id, status, schema_name, latest_version, total, done, failed, error, actor, created_at, started_at, finished_at";

    /// <summary>Records a new migration and its targets; false when another one is pending or running (nothing written).</summary>
    public static async Task<bool> TryInsertAsync(DbConnection c, DbTransaction tx, FleetMigration m, IReadOnlyList<(Guid? TenantId, string? Slug)> targets)
    {
        if ((await c.QueryAsync("SELECT id FROM fleet_migrations WHERE active = 'active'", tx, r => r.GetString(0))).Count > 0)
        {
            return false;
        }

        await c.ExecuteAsync(
            $"INSERT INTO fleet_migrations ({Columns}, active) VALUES (@id, @status, @schema, @latest, @total, 0, 0, NULL, @actor, @at, NULL, NULL, 'active')",
            tx, ("@id", m.Id), ("@status", m.Status), ("@schema", m.Schema), ("@latest", m.LatestVersion), ("@total", m.Total), ("@actor", m.Actor), ("@at", m.CreatedAt));
        for (var i = 0; i < targets.Count; i++)
        {
            await c.ExecuteAsync(
                "INSERT INTO fleet_migration_targets (migration_id, ordinal, tenant_id, slug, status) VALUES (@id, @ordinal, @tenant, @slug, 'pending')",
                tx, ("@id", m.Id), ("@ordinal", i), ("@tenant", targets[i].TenantId), ("@slug", targets[i].Slug));
        }

        return true;
    }

    public static async Task<FleetMigration?> FindAsync(DbConnection c, DbTransaction? tx, Guid id) =>
        (await c.QueryAsync($"SELECT {Columns} FROM fleet_migrations WHERE id = @id", tx, Read, ("@id", id))).FirstOrDefault();

    public static async Task<FleetMigration?> ActiveAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync($"SELECT {Columns} FROM fleet_migrations WHERE active = 'active'", tx, Read)).FirstOrDefault();

    /// <summary>Newest first: ids are version-7 GUIDs, so their text sorts by creation.</summary>
    public static Task<List<FleetMigration>> ListAsync(DbConnection c, Guid? before, int limit) => c.QueryAsync(
        $"SELECT {Columns} FROM fleet_migrations{(before is null ? "" : " WHERE id < @before")} ORDER BY id DESC LIMIT @limit",
        null, Read, ("@before", before), ("@limit", limit));

    public static Task<List<Guid>> UnfinishedAsync(DbConnection c) => c.QueryAsync(
        "SELECT id FROM fleet_migrations WHERE status IN ('pending', 'running') ORDER BY id", null, r => r.ReadGuid(0));

    public static Task<List<FleetMigrationTarget>> TargetsAsync(DbConnection c, DbTransaction? tx, Guid id, string? status) => c.QueryAsync(
        "SELECT migration_id, ordinal, tenant_id, slug, status, error, result, finished_at FROM fleet_migration_targets WHERE migration_id = @id"
            + (status is null ? "" : " AND status = @status") + " ORDER BY ordinal",
        tx,
        r => new FleetMigrationTarget(r.ReadGuid(0), Int(r, 1), r.ReadGuidOrNull(2), r.ReadStringOrNull(3), r.GetString(4), r.ReadStringOrNull(5), r.ReadStringOrNull(6), r.ReadTimeOrNull(7)),
        ("@id", id), ("@status", status));

    public static async Task<FleetMigrationLease?> AcquireAsync(DbConnection c, DbTransaction tx, Guid id, string owner, DateTimeOffset now, DateTimeOffset until)
    {
        var tokens = await c.QueryAsync(
            """
            UPDATE fleet_migrations SET lease_owner = @owner, lease_until = @until, lease_token = lease_token + 1,
                status = 'running', started_at = COALESCE(started_at, @now)
            WHERE id = @id AND status IN ('pending', 'running') AND (lease_owner IS NULL OR lease_owner = @owner OR lease_until < @now)
            RETURNING lease_token
            """,
            tx, r => r.GetInt64(0), ("@id", id), ("@owner", owner), ("@now", now), ("@until", until));
        return tokens.Count == 1 ? new FleetMigrationLease(id, owner, tokens[0]) : null;
    }

    /// <summary>Extends the lease while its token is current; false once another host took the migration (every commit of progress starts with it).</summary>
    public static async Task<bool> FenceAsync(DbConnection c, DbTransaction tx, FleetMigrationLease lease, DateTimeOffset until) =>
        await c.ExecuteAsync(
            "UPDATE fleet_migrations SET lease_until = @until WHERE id = @id AND lease_owner = @owner AND lease_token = @token",
            tx, ("@id", lease.Id), ("@owner", lease.Owner), ("@token", lease.Token), ("@until", until)) == 1;

    public static Task SetTargetAsync(DbConnection c, DbTransaction tx, Guid id, int ordinal, string status, string? error, string? result, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE fleet_migration_targets SET status = @status, error = @error, result = @result, finished_at = @now WHERE migration_id = @id AND ordinal = @ordinal",
        tx, ("@id", id), ("@ordinal", ordinal), ("@status", status), ("@error", error), ("@result", result), ("@now", now));

    /// <summary>Recounts the progress from the targets (so a batch recorded twice after a take-over is not counted twice).</summary>
    public static Task CountAsync(DbConnection c, DbTransaction tx, Guid id) => c.ExecuteAsync(
        """
        UPDATE fleet_migrations SET
            done = (SELECT COUNT(*) FROM fleet_migration_targets t WHERE t.migration_id = @id AND t.status <> 'pending'),
            failed = (SELECT COUNT(*) FROM fleet_migration_targets t WHERE t.migration_id = @id AND t.status = 'failed')
        WHERE id = @id
        """,
        tx, ("@id", id));

    public static async Task<bool> FinishAsync(DbConnection c, DbTransaction tx, FleetMigrationLease lease, string status, string? error, DateTimeOffset now) =>
        await c.ExecuteAsync(
            """
            UPDATE fleet_migrations SET status = @status, error = @error, finished_at = @now, active = NULL, lease_owner = NULL, lease_until = NULL
            WHERE id = @id AND lease_owner = @owner AND lease_token = @token
            """,
            tx, ("@id", lease.Id), ("@owner", lease.Owner), ("@token", lease.Token), ("@status", status), ("@error", error), ("@now", now)) == 1;

    /// <summary>Frees every lease of <paramref name="owner"/> (all of them when null): its holder is gone.</summary>
    public static Task ReleaseOwnedAsync(DbConnection c, DbTransaction tx, string? owner) => owner is null
        ? c.ExecuteAsync("UPDATE fleet_migrations SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL", tx)
        : c.ExecuteAsync("UPDATE fleet_migrations SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = @owner", tx, ("@owner", owner));

    private static int Int(DbDataReader r, int i) => Convert.ToInt32(r.GetValue(i), CultureInfo.InvariantCulture);

    private static FleetMigration Read(DbDataReader r) => new()
    {
        Id = r.ReadGuid(0),
        Status = r.GetString(1),
        Schema = r.GetString(2),
        LatestVersion = Int(r, 3),
        Total = Int(r, 4),
        Done = Int(r, 5),
        Failed = Int(r, 6),
        Error = r.ReadStringOrNull(7),
        Actor = r.GetString(8),
        CreatedAt = r.ReadTime(9),
        StartedAt = r.ReadTimeOrNull(10),
        FinishedAt = r.ReadTimeOrNull(11),
    };
}
