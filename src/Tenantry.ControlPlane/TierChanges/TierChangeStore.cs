using System.Data.Common;
using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>Where a tier change stands, as the <c>tier_changes</c> row keeps it.</summary>
public enum TierChangePhase
{
    /// <summary>Started: the target is being made and filled; the tenant lives at the source.</summary>
    Moving,

    /// <summary>The source refuses the tenant's writes; the gateway answers its writes 503.</summary>
    Frozen,

    /// <summary>The tenant lives at the target; the source is kept read-only until it is retired.</summary>
    Switched,

    /// <summary>The source was exported and deleted.</summary>
    Retired,

    /// <summary>A step failed before the switch: the target was dropped, the tenant stayed at the source.</summary>
    RolledBack,
}

/// <summary>One tier change: the operation that runs it, its source and target, and its phase.</summary>
public sealed record TierChange
{
    public required Guid OperationId { get; init; }
    public required Guid TenantId { get; init; }
    public required string Slug { get; init; }
    public required string SourceTier { get; init; }
    public required IsolationModel SourceIsolation { get; init; }
    public required string TargetTier { get; init; }
    public required IsolationModel TargetIsolation { get; init; }

    /// <summary>The cell the target is made in; null: the tenant's own cell (moves between cells set it).</summary>
    public string? TargetCell { get; init; }

    /// <summary>A move's source cell (where the tenant lived when it started); null for a tier change.</summary>
    public string? SourceCell { get; init; }

    /// <summary>
    /// A move's PostgreSQL servers, recorded by provision-target before anything is made: the source's (where the
    /// tenant's database is) and the target's (a server of the target cell). Null on an engine without servers
    /// (SQLite files) and for the shared pool.
    /// </summary>
    public string? SourceServer { get; init; }

    /// <inheritdoc cref="SourceServer"/>
    public string? TargetServer { get; init; }

    /// <summary>True for a move between cells (a <c>move</c> operation), false for a tier change.</summary>
    public bool IsMove => TargetCell is not null;

    /// <summary>
    /// A move whose source and target are one place (no servers on either side, the shared pool, or the same
    /// server): the data stays, and the switch updates the placement only.
    /// </summary>
    public bool SamePlace => IsMove && string.Equals(SourceServer, TargetServer, StringComparison.Ordinal);

    public required TierChangePhase Phase { get; init; }
    public JsonObject? TargetResources { get; init; }
    public DateTimeOffset? RetireAfter { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// The <c>tier_changes</c> table, keyed by operation id: what a restarted worker needs to resume a tier change
/// (its target lives here, not in memory), which tenants are frozen (read by the routing table), and which
/// sources wait to be retired. Callers own the transaction.
/// </summary>
internal static class TierChangeStore
{
    public static SchemaPart Schema { get; } = SchemaPart.Portable("TierChanges", """

        CREATE TABLE IF NOT EXISTS tier_changes (
            operation_id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            slug TEXT NOT NULL,
            source_tier TEXT NOT NULL,
            source_isolation TEXT NOT NULL,
            target_tier TEXT NOT NULL,
            target_isolation TEXT NOT NULL,
            target_cell TEXT,
            source_cell TEXT,
            source_server TEXT,
            target_server TEXT,
            phase TEXT NOT NULL,
            target_resources TEXT,
            retire_after TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tier_changes_tenant ON tier_changes(tenant_id);
        CREATE INDEX IF NOT EXISTS tier_changes_phase ON tier_changes(phase);
        """).WithAddedColumns(("tier_changes", "source_cell", "TEXT NULL"), ("tier_changes", "source_server", "TEXT NULL"), ("tier_changes", "target_server", "TEXT NULL"));

    private const string Columns =
        "operation_id, tenant_id, slug, source_tier, source_isolation, target_tier, target_isolation, target_cell, phase, target_resources, retire_after, created_at, source_cell, source_server, target_server";

    public static Task InsertAsync(DbConnection c, DbTransaction tx, TierChange change) => c.ExecuteAsync(
        $"INSERT INTO tier_changes ({Columns}, updated_at) VALUES (@op, @tenant, @slug, @st, @si, @tt, @ti, @cell, @phase, NULL, NULL, @now, @sc, NULL, NULL, @now)",
        tx,
        ("@op", change.OperationId), ("@tenant", change.TenantId), ("@slug", change.Slug), ("@st", change.SourceTier), ("@si", change.SourceIsolation.ToWire()),
        ("@tt", change.TargetTier), ("@ti", change.TargetIsolation.ToWire()), ("@cell", change.TargetCell), ("@phase", ToWire(change.Phase)), ("@now", change.CreatedAt),
        ("@sc", change.SourceCell));

    public static async Task<TierChange?> GetAsync(DbConnection c, DbTransaction? tx, Guid operationId) =>
        (await c.QueryAsync($"SELECT {Columns} FROM tier_changes WHERE operation_id = @op", tx, Read, ("@op", operationId))).SingleOrDefault();

    public static Task SetPhaseAsync(DbConnection c, DbTransaction tx, Guid operationId, TierChangePhase phase, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE tier_changes SET phase = @phase, updated_at = @now WHERE operation_id = @op", tx, ("@op", operationId), ("@phase", ToWire(phase)), ("@now", now));

    public static Task SetTargetResourcesAsync(DbConnection c, DbTransaction tx, Guid operationId, JsonObject resources, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE tier_changes SET target_resources = @resources, updated_at = @now WHERE operation_id = @op",
        tx, ("@op", operationId), ("@resources", resources.ToJsonString()), ("@now", now));

    /// <summary>A move's servers, recorded before its target is made (see <see cref="TierChange.SourceServer"/>).</summary>
    public static Task SetServersAsync(DbConnection c, DbTransaction tx, Guid operationId, string? sourceServer, string? targetServer, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE tier_changes SET source_server = @ss, target_server = @ts, updated_at = @now WHERE operation_id = @op",
        tx, ("@op", operationId), ("@ss", sourceServer), ("@ts", targetServer), ("@now", now));

    public static Task SwitchedAsync(DbConnection c, DbTransaction tx, Guid operationId, DateTimeOffset retireAfter, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE tier_changes SET phase = @phase, retire_after = @after, updated_at = @now WHERE operation_id = @op",
        tx, ("@op", operationId), ("@phase", ToWire(TierChangePhase.Switched)), ("@after", retireAfter), ("@now", now));

    /// <summary>The tenants whose writes are frozen now (for the routing table).</summary>
    public static async Task<HashSet<Guid>> FrozenAsync(DbConnection c) =>
        [.. await c.QueryAsync("SELECT tenant_id FROM tier_changes WHERE phase = @phase", null, r => r.ReadGuid(0), ("@phase", ToWire(TierChangePhase.Frozen)))];

    /// <summary>Switched changes whose source is due for retirement (all of the tenant's when <paramref name="tenantId"/> is given, due or not).</summary>
    public static Task<List<TierChange>> DueAsync(DbConnection c, DateTimeOffset now, Guid? tenantId = null) => tenantId is { } id
        ? c.QueryAsync($"SELECT {Columns} FROM tier_changes WHERE phase = @phase AND tenant_id = @tenant ORDER BY created_at", null, Read,
            ("@phase", ToWire(TierChangePhase.Switched)), ("@tenant", id))
        : c.QueryAsync($"SELECT {Columns} FROM tier_changes WHERE phase = @phase AND retire_after <= @now ORDER BY retire_after", null, Read,
            ("@phase", ToWire(TierChangePhase.Switched)), ("@now", now));

    private static TierChange Read(DbDataReader r) => new()
    {
        OperationId = r.ReadGuid(0),
        TenantId = r.ReadGuid(1),
        Slug = r.GetString(2),
        SourceTier = r.GetString(3),
        SourceIsolation = WireNames.ParseIsolation(r.GetString(4)),
        TargetTier = r.GetString(5),
        TargetIsolation = WireNames.ParseIsolation(r.GetString(6)),
        TargetCell = r.ReadStringOrNull(7),
        Phase = Parse(r.GetString(8)),
        TargetResources = r.ReadStringOrNull(9) is { } json ? JsonNode.Parse(json)!.AsObject() : null,
        RetireAfter = r.ReadTimeOrNull(10),
        CreatedAt = r.ReadTime(11),
        SourceCell = r.ReadStringOrNull(12),
        SourceServer = r.ReadStringOrNull(13),
        TargetServer = r.ReadStringOrNull(14),
    };

    public static string ToWire(TierChangePhase phase) => phase switch
    {
        TierChangePhase.Moving => "moving",
        TierChangePhase.Frozen => "frozen",
        TierChangePhase.Switched => "switched",
        TierChangePhase.Retired => "retired",
        TierChangePhase.RolledBack => "rolled-back",
        _ => throw new ArgumentOutOfRangeException(nameof(phase)),
    };

    private static TierChangePhase Parse(string value) => Enum.GetValues<TierChangePhase>().First(p => ToWire(p) == value);
}
