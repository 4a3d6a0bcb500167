using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Rollouts;

/// <summary>A host's hold on a rollout; <see cref="Token"/> grows with every take, so a stale holder is fenced out.</summary>
internal readonly record struct RolloutLease(Guid RolloutId, string Owner, long Token);

/// <summary>Rollouts, their targets and waves. Callers own the transaction.</summary>
internal static class RolloutStore
{
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Rollouts", """

        -- Rollouts (Rollouts/): release rollouts of an app, their plan per target and wave, and the lease of the host running each.
        CREATE TABLE IF NOT EXISTS rollouts (
            id TEXT PRIMARY KEY,
            app TEXT NOT NULL,
            version TEXT NOT NULL,
            previous_release TEXT NOT NULL,
            status TEXT NOT NULL,
            phase TEXT NOT NULL,
            wave INTEGER NOT NULL,
            bake_seconds INTEGER NOT NULL,
            max_error_rate DOUBLE PRECISION NULL,
            max_p99_ms DOUBLE PRECISION NULL,
            error TEXT NULL,
            actor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT NULL,
            lease_owner TEXT NULL,
            lease_until TEXT NULL,
            lease_token BIGINT NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active ON rollouts(app) WHERE status IN ('running', 'paused');
        CREATE INDEX IF NOT EXISTS rollouts_status ON rollouts(status, id);
        CREATE TABLE IF NOT EXISTS rollout_targets (
            rollout_id TEXT NOT NULL REFERENCES rollouts(id),
            ordinal INTEGER NOT NULL,
            wave INTEGER NOT NULL,
            tenant_id TEXT NULL,
            slug TEXT NULL,
            slot INTEGER NOT NULL,
            dedicated INTEGER NOT NULL,
            status TEXT NOT NULL,
            release_version TEXT NOT NULL,
            error TEXT NULL,
            PRIMARY KEY (rollout_id, ordinal)
        );
        CREATE TABLE IF NOT EXISTS rollout_waves (
            rollout_id TEXT NOT NULL REFERENCES rollouts(id),
            wave INTEGER NOT NULL,
            status TEXT NOT NULL,
            figures TEXT NULL,
            PRIMARY KEY (rollout_id, wave)
        );
        """);

    private const string Columns =
        "id, app, version, previous_release, status, phase, wave, bake_seconds, max_error_rate, max_p99_ms, error, actor, created_at, updated_at, finished_at";

    public static async Task InsertAsync(DbConnection c, DbTransaction tx, Rollout r, IReadOnlyList<RolloutTarget> targets, int waves)
    {
        await c.ExecuteAsync(
            $"INSERT INTO rollouts ({Columns}) VALUES (@id, @app, @version, @previous, @status, @phase, @wave, @bake, @rate, @p99, NULL, @actor, @at, @at, NULL)",
            tx, ("@id", r.Id), ("@app", r.App), ("@version", r.Version), ("@previous", r.PreviousRelease), ("@status", r.Status), ("@phase", r.Phase),
            ("@wave", r.Wave), ("@bake", r.BakeSeconds), ("@rate", r.MaxErrorRate), ("@p99", r.MaxP99Ms), ("@actor", r.Actor), ("@at", r.CreatedAt));
        foreach (var t in targets)
        {
            await c.ExecuteAsync(
                """
                INSERT INTO rollout_targets (rollout_id, ordinal, wave, tenant_id, slug, slot, dedicated, status, release_version, error)
                VALUES (@id, @ordinal, @wave, @tenant, @slug, @slot, @dedicated, @status, @release, NULL)
                """,
                tx, ("@id", r.Id), ("@ordinal", t.Ordinal), ("@wave", t.Wave), ("@tenant", t.TenantId), ("@slug", t.Slug), ("@slot", t.Slot),
                ("@dedicated", t.Dedicated ? 1 : 0), ("@status", t.Status), ("@release", t.Release));
        }

        for (var wave = 0; wave <= waves; wave++)
        {
            await c.ExecuteAsync(
                "INSERT INTO rollout_waves (rollout_id, wave, status, figures) VALUES (@id, @wave, @status, NULL)",
                tx, ("@id", r.Id), ("@wave", wave), ("@status", RolloutStatus.Pending));
        }
    }

    public static async Task<Rollout?> FindAsync(DbConnection c, DbTransaction? tx, Guid id) =>
        (await c.QueryAsync($"SELECT {Columns} FROM rollouts WHERE id = @id", tx, Read, ("@id", id))).FirstOrDefault();

    public static async Task<Rollout?> ActiveForAppAsync(DbConnection c, DbTransaction? tx, string app) =>
        (await c.QueryAsync($"SELECT {Columns} FROM rollouts WHERE app = @app AND status IN ('running', 'paused')", tx, Read, ("@app", app))).FirstOrDefault();

    /// <summary>Newest first: ids are version-7 GUIDs, so their text sorts by creation.</summary>
    public static Task<List<Rollout>> ListAsync(DbConnection c, string? app, Guid? before, int limit)
    {
        var where = new List<string>();
        if (app is not null)
        {
            where.Add("app = @app");
        }

        if (before is not null)
        {
            where.Add("id < @before");
        }

        var filter = where.Count == 0 ? "" : " WHERE " + string.Join(" AND ", where);
        return c.QueryAsync(
            $"SELECT {Columns} FROM rollouts{filter} ORDER BY id DESC LIMIT @limit",
            null, Read, ("@app", app), ("@before", before), ("@limit", limit));
    }

    public static Task<List<Guid>> RunningAsync(DbConnection c) => c.QueryAsync(
        "SELECT id FROM rollouts WHERE status = 'running' ORDER BY id", null, r => r.ReadGuid(0));

    public static Task<List<RolloutTarget>> TargetsAsync(DbConnection c, DbTransaction? tx, Guid id) => c.QueryAsync(
        "SELECT rollout_id, ordinal, wave, tenant_id, slug, slot, dedicated, status, release_version, error FROM rollout_targets WHERE rollout_id = @id ORDER BY ordinal",
        tx,
        r => new RolloutTarget(
            r.ReadGuid(0), Int(r, 1), Int(r, 2), r.ReadGuidOrNull(3), r.ReadStringOrNull(4), Int(r, 5), Int(r, 6) != 0,
            r.GetString(7), r.GetString(8), r.ReadStringOrNull(9)),
        ("@id", id));

    public static Task<List<RolloutWave>> WavesAsync(DbConnection c, DbTransaction? tx, Guid id) => c.QueryAsync(
        "SELECT rollout_id, wave, status, figures FROM rollout_waves WHERE rollout_id = @id ORDER BY wave",
        tx, r => new RolloutWave(r.ReadGuid(0), Int(r, 1), r.GetString(2), r.ReadStringOrNull(3)), ("@id", id));

    /// <summary>Sets the status of a running rollout to paused, or a paused one to running; false when it was not in <paramref name="from"/>.</summary>
    public static async Task<bool> SetStatusAsync(DbConnection c, DbTransaction tx, Guid id, string from, string to, DateTimeOffset now) =>
        await c.ExecuteAsync(
            "UPDATE rollouts SET status = @to, updated_at = @now WHERE id = @id AND status = @from AND phase <> 'rollback'",
            tx, ("@id", id), ("@from", from), ("@to", to), ("@now", now)) == 1;

    /// <summary>Asks for a rollback of an unfinished rollout (running again when paused); false when it is finished or rolling back already.</summary>
    public static async Task<bool> AbortAsync(DbConnection c, DbTransaction tx, Guid id, string reason, DateTimeOffset now) =>
        await c.ExecuteAsync(
            "UPDATE rollouts SET status = 'running', phase = 'rollback', error = @reason, updated_at = @now WHERE id = @id AND status IN ('running', 'paused') AND phase <> 'rollback'",
            tx, ("@id", id), ("@reason", reason), ("@now", now)) == 1;

    /// <summary>Moves the rollout on (fenced by the lease, and only from the phase the worker saw); false when the lease or the phase changed.</summary>
    public static async Task<bool> AdvanceAsync(DbConnection c, DbTransaction tx, RolloutLease lease, string fromPhase, string phase, int wave, DateTimeOffset now) =>
        await c.ExecuteAsync(
            "UPDATE rollouts SET phase = @phase, wave = @wave, updated_at = @now WHERE id = @id AND lease_token = @token AND phase = @from",
            tx, ("@id", lease.RolloutId), ("@token", lease.Token), ("@from", fromPhase), ("@phase", phase), ("@wave", wave), ("@now", now)) == 1;

    /// <summary>Ends the rollout with <paramref name="status"/> (fenced by the lease); an error already recorded (an abort's reason) is kept unless one is given.</summary>
    public static async Task<bool> FinishAsync(DbConnection c, DbTransaction tx, RolloutLease lease, string status, string? error, DateTimeOffset now) =>
        await c.ExecuteAsync(
            """
            UPDATE rollouts SET status = @status, phase = 'done', error = COALESCE(@error, error), updated_at = @now, finished_at = @now,
                lease_owner = NULL, lease_until = NULL
            WHERE id = @id AND lease_token = @token
            """,
            tx, ("@id", lease.RolloutId), ("@token", lease.Token), ("@status", status), ("@error", error), ("@now", now)) == 1;

    /// <summary>Starts the rollback (fenced by the lease), with its reason, unless one was asked for already.</summary>
    public static async Task<bool> FailAsync(DbConnection c, DbTransaction tx, RolloutLease lease, string error, DateTimeOffset now) =>
        await c.ExecuteAsync(
            "UPDATE rollouts SET phase = 'rollback', error = COALESCE(error, @error), updated_at = @now WHERE id = @id AND lease_token = @token AND phase <> 'done'",
            tx, ("@id", lease.RolloutId), ("@token", lease.Token), ("@error", error), ("@now", now)) == 1;

    public static Task SetTargetAsync(DbConnection c, DbTransaction tx, Guid id, int ordinal, string status, string release, string? error) => c.ExecuteAsync(
        "UPDATE rollout_targets SET status = @status, release_version = @release, error = @error WHERE rollout_id = @id AND ordinal = @ordinal",
        tx, ("@id", id), ("@ordinal", ordinal), ("@status", status), ("@release", release), ("@error", error));

    public static Task SetWaveAsync(DbConnection c, DbTransaction tx, Guid id, int wave, string status, string? figures) => c.ExecuteAsync(
        "UPDATE rollout_waves SET status = @status, figures = COALESCE(@figures, figures) WHERE rollout_id = @id AND wave = @wave",
        tx, ("@id", id), ("@wave", wave), ("@status", status), ("@figures", figures));

    /// <summary>Takes the rollout for <paramref name="owner"/> unless another host holds an unexpired lease; every take raises the fencing token.</summary>
    public static async Task<RolloutLease?> AcquireAsync(DbConnection c, DbTransaction tx, Guid id, string owner, DateTimeOffset now, DateTimeOffset until)
    {
        var tokens = await c.QueryAsync(
            """
            UPDATE rollouts SET lease_owner = @owner, lease_until = @until, lease_token = lease_token + 1
            WHERE id = @id AND status = 'running' AND (lease_owner IS NULL OR lease_owner = @owner OR lease_until < @now)
            RETURNING lease_token
            """,
            tx, r => r.GetInt64(0), ("@id", id), ("@owner", owner), ("@now", now), ("@until", until));
        return tokens.Count == 1 ? new RolloutLease(id, owner, tokens[0]) : null;
    }

    /// <summary>Extends the lease while its token is current; false once another host took the rollout.</summary>
    public static async Task<bool> RenewAsync(DbConnection c, DbTransaction tx, RolloutLease lease, DateTimeOffset until) =>
        await c.ExecuteAsync(
            "UPDATE rollouts SET lease_until = @until WHERE id = @id AND lease_token = @token",
            tx, ("@id", lease.RolloutId), ("@token", lease.Token), ("@until", until)) == 1;

    /// <summary>Frees the lease (a paused rollout, or a stop), so the next take does not wait for it to run out.</summary>
    public static Task ReleaseAsync(DbConnection c, DbTransaction tx, RolloutLease lease) => c.ExecuteAsync(
        "UPDATE rollouts SET lease_owner = NULL, lease_until = NULL WHERE id = @id AND lease_token = @token",
        tx, ("@id", lease.RolloutId), ("@token", lease.Token));

    /// <summary>Frees every lease of <paramref name="owner"/> (all of them when null): its holder is gone.</summary>
    public static Task ReleaseOwnedAsync(DbConnection c, DbTransaction tx, string? owner) => owner is null
        ? c.ExecuteAsync("UPDATE rollouts SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL", tx)
        : c.ExecuteAsync("UPDATE rollouts SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = @owner", tx, ("@owner", owner));

    /// <summary>An outbox message for the rollout's event, once per event (the key is unique).</summary>
    public static Task OutboxAsync(DbConnection c, DbTransaction tx, Guid id, string type, string payload, DateTimeOffset now) => c.ExecuteAsync(
        "INSERT INTO outbox (message_key, tenant_id, type, payload, created_at) VALUES (@key, NULL, @type, @payload, @now) ON CONFLICT (message_key) DO NOTHING",
        tx, ("@key", $"rollout:{id}:{type}"), ("@type", type), ("@payload", payload), ("@now", now));

    private static int Int(DbDataReader r, int i) => Convert.ToInt32(r.GetValue(i), CultureInfo.InvariantCulture);

    private static Rollout Read(DbDataReader r) => new()
    {
        Id = r.ReadGuid(0),
        App = r.GetString(1),
        Version = r.GetString(2),
        PreviousRelease = r.GetString(3),
        Status = r.GetString(4),
        Phase = r.GetString(5),
        Wave = Int(r, 6),
        BakeSeconds = Int(r, 7),
        MaxErrorRate = r.IsDBNull(8) ? null : Convert.ToDouble(r.GetValue(8), CultureInfo.InvariantCulture),
        MaxP99Ms = r.IsDBNull(9) ? null : Convert.ToDouble(r.GetValue(9), CultureInfo.InvariantCulture),
        Error = r.ReadStringOrNull(10),
        Actor = r.GetString(11),
        CreatedAt = r.ReadTime(12),
        UpdatedAt = r.ReadTime(13),
        FinishedAt = r.ReadTimeOrNull(14),
    };
}
