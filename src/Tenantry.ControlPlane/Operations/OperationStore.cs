using System.Data.Common;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Operations;

/// <summary>A node's hold on an operation; <see cref="Token"/> grows with every take, so a stale holder is fenced out.</summary>
internal readonly record struct OperationLease(Guid OperationId, string Owner, long Token);

/// <summary>Operations and their steps. Callers own the transaction.</summary>
internal static class OperationStore
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Operations", """

        CREATE TABLE IF NOT EXISTS operations (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            tenant_id TEXT NOT NULL REFERENCES tenants(id),
            status TEXT NOT NULL,
            error TEXT NULL,
            actor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT NULL,
            finished_at TEXT NULL,
            lease_owner TEXT NULL,
            lease_until TEXT NULL,
            lease_token BIGINT NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS operations_status ON operations(status, id);
        CREATE INDEX IF NOT EXISTS operations_tenant ON operations(tenant_id, id);
        CREATE TABLE IF NOT EXISTS operation_steps (
            operation_id TEXT NOT NULL REFERENCES operations(id),
            ordinal INTEGER NOT NULL,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            started_at TEXT NULL,
            finished_at TEXT NULL,
            error TEXT NULL,
            PRIMARY KEY (operation_id, ordinal)
        );
        """).WithAddedColumns(("operations", "lease_token", "BIGINT NOT NULL DEFAULT 0"));

    public static async Task InsertAsync(DbConnection c, DbTransaction tx, Operation op)
    {
        await c.ExecuteAsync(
            "INSERT INTO operations (id, kind, tenant_id, status, error, actor, created_at) VALUES (@id, @kind, @tenant, @status, NULL, @actor, @created)",
            tx,
            ("@id", op.Id), ("@kind", op.Kind.ToWire()), ("@tenant", op.TenantId), ("@status", op.Status.ToWire()),
            ("@actor", op.Actor), ("@created", op.CreatedAt));
        foreach (var step in op.Steps)
        {
            await c.ExecuteAsync(
                "INSERT INTO operation_steps (operation_id, ordinal, name, status, attempts) VALUES (@op, @ordinal, @name, @status, 0)",
                tx,
                ("@op", op.Id), ("@ordinal", step.Ordinal), ("@name", step.Name), ("@status", step.Status.ToWire()));
        }
    }

    public static async Task<Operation?> GetAsync(DbConnection c, DbTransaction? tx, Guid id)
    {
        var steps = await c.QueryAsync(
            "SELECT ordinal, name, status, attempts, started_at, finished_at, error FROM operation_steps WHERE operation_id = @id ORDER BY ordinal",
            tx,
            r => new OperationStep
            {
                Ordinal = r.GetInt32(0),
                Name = r.GetString(1),
                Status = OperationNames.ParseStatus(r.GetString(2)),
                Attempts = r.GetInt32(3),
                StartedAt = r.ReadTimeOrNull(4),
                FinishedAt = r.ReadTimeOrNull(5),
                Error = r.ReadStringOrNull(6),
            },
            ("@id", id));
        var ops = await c.QueryAsync(
            "SELECT id, kind, tenant_id, status, error, actor, created_at, started_at, finished_at FROM operations WHERE id = @id",
            tx,
            r => new Operation
            {
                Id = r.ReadGuid(0),
                Kind = OperationNames.ParseKind(r.GetString(1)),
                TenantId = r.ReadGuid(2),
                Status = OperationNames.ParseStatus(r.GetString(3)),
                Error = r.ReadStringOrNull(4),
                Actor = r.GetString(5),
                CreatedAt = r.ReadTime(6),
                StartedAt = r.ReadTimeOrNull(7),
                FinishedAt = r.ReadTimeOrNull(8),
                Steps = steps,
            },
            ("@id", id));
        return ops.SingleOrDefault();
    }

    public static Task<List<Guid>> UnfinishedAsync(DbConnection c) => c.QueryAsync(
        "SELECT id FROM operations WHERE status IN ('pending', 'running') ORDER BY id", null, r => r.ReadGuid(0));

    public static Task<List<Guid>> ForTenantAsync(DbConnection c, Guid tenantId) => c.QueryAsync(
        "SELECT id FROM operations WHERE tenant_id = @t ORDER BY id", null, r => r.ReadGuid(0), ("@t", tenantId));

    /// <summary>
    /// Takes the operation for <paramref name="owner"/> until <paramref name="until"/>, unless another
    /// node holds an unexpired lease on it; the lease, or null when not taken. Every take raises the
    /// operation's fencing token, so whoever held it before can no longer commit (<see cref="FenceAsync"/>).
    /// </summary>
    public static async Task<OperationLease?> AcquireAsync(DbConnection c, DbTransaction tx, Guid id, string owner, DateTimeOffset now, DateTimeOffset until)
    {
        var tokens = await c.QueryAsync(
            """
            UPDATE operations SET lease_owner = @owner, lease_until = @until, lease_token = lease_token + 1
            WHERE id = @id AND status IN ('pending', 'running')
              AND (lease_owner IS NULL OR lease_owner = @owner OR lease_until < @now)
            RETURNING lease_token
            """,
            tx, r => r.GetInt64(0), ("@id", id), ("@owner", owner), ("@now", now), ("@until", until));
        return tokens.Count == 1 ? new OperationLease(id, owner, tokens[0]) : null;
    }

    /// <summary>
    /// Extends <paramref name="lease"/> to <paramref name="until"/> if it is still the operation's
    /// current lease; false once another node took the operation over (a higher fencing token). Every
    /// transaction that records a step's progress starts with it: on PostgreSQL the UPDATE locks the
    /// row, so a take-over waits for that commit or the commit sees the new token and is rolled back.
    /// </summary>
    public static async Task<bool> FenceAsync(DbConnection c, DbTransaction tx, OperationLease lease, DateTimeOffset until) =>
        await c.ExecuteAsync(
            "UPDATE operations SET lease_until = @until WHERE id = @id AND lease_owner = @owner AND lease_token = @token",
            tx, ("@id", lease.OperationId), ("@owner", lease.Owner), ("@token", lease.Token), ("@until", until)) == 1;

    /// <summary>
    /// Frees the leases <paramref name="owner"/> holds: run when a node starts, as whatever it held
    /// belonged to its previous life, and when it stops gracefully, so others take its operations over
    /// at once (on PostgreSQL a notification wakes them). The operations ids freed.
    /// </summary>
    public static async Task<List<Guid>> ReleaseOwnedAsync(DbConnection c, DbTransaction tx, string owner)
    {
        var freed = await c.QueryAsync(
            "UPDATE operations SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = @owner RETURNING id",
            tx, r => r.ReadGuid(0), ("@owner", owner));
        if (freed.Count > 0)
        {
            await NotifyAsync(c, tx, OperationListener.Released);
        }

        return freed;
    }

    /// <summary>Frees every lease: for a store that only this process can open.</summary>
    public static Task ReleaseAllAsync(DbConnection c, DbTransaction tx) => c.ExecuteAsync(
        "UPDATE operations SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL", tx);

    public static Task StartAsync(DbConnection c, DbTransaction tx, Guid id, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE operations SET status = 'running', started_at = COALESCE(started_at, @now) WHERE id = @id",
        tx, ("@id", id), ("@now", now));

    /// <summary>
    /// Ends the operation, if <paramref name="lease"/> is still its current lease; false if not (nothing changed).
    /// On PostgreSQL the commit notifies every replica, so long-polls of the operation anywhere answer at once.
    /// </summary>
    public static async Task<bool> FinishAsync(DbConnection c, DbTransaction tx, OperationLease lease, OperationStatus status, string? error, DateTimeOffset now)
    {
        var finished = await c.ExecuteAsync(
            """
            UPDATE operations SET status = @status, error = @error, finished_at = @now, lease_owner = NULL, lease_until = NULL
            WHERE id = @id AND lease_owner = @owner AND lease_token = @token
            """,
            tx, ("@id", lease.OperationId), ("@owner", lease.Owner), ("@token", lease.Token), ("@status", status.ToWire()), ("@error", error), ("@now", now)) == 1;
        if (finished)
        {
            await NotifyAsync(c, tx, OperationListener.FinishedPrefix + lease.OperationId.ToString("D"));
        }

        return finished;
    }

    /// <summary>A notification on <see cref="OperationListener.Channel"/>, sent when the transaction commits (PostgreSQL only).</summary>
    private static Task NotifyAsync(DbConnection c, DbTransaction tx, string payload) =>
        c is Npgsql.NpgsqlConnection
            ? c.ExecuteAsync($"SELECT pg_notify('{OperationListener.Channel}', @payload)", tx, ("@payload", payload))
            : Task.CompletedTask;

    public static Task StepAttemptAsync(DbConnection c, DbTransaction tx, Guid id, int ordinal, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE operation_steps SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, @now), error = NULL WHERE operation_id = @id AND ordinal = @ordinal",
        tx, ("@id", id), ("@ordinal", ordinal), ("@now", now));

    public static Task StepErrorAsync(DbConnection c, DbTransaction tx, Guid id, int ordinal, string error) => c.ExecuteAsync(
        "UPDATE operation_steps SET error = @error WHERE operation_id = @id AND ordinal = @ordinal",
        tx, ("@id", id), ("@ordinal", ordinal), ("@error", error));

    public static Task StepFinishAsync(DbConnection c, DbTransaction tx, Guid id, int ordinal, OperationStatus status, string? error, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE operation_steps SET status = @status, error = @error, finished_at = @now WHERE operation_id = @id AND ordinal = @ordinal",
        tx, ("@id", id), ("@ordinal", ordinal), ("@status", status.ToWire()), ("@error", error), ("@now", now));

    /// <summary>Puts a failed operation back in the queue from its failed step; done steps stay done.</summary>
    public static async Task ResetForRetryAsync(DbConnection c, DbTransaction tx, Guid id)
    {
        await c.ExecuteAsync(
            "UPDATE operation_steps SET status = 'pending', finished_at = NULL WHERE operation_id = @id AND status IN ('failed', 'running')",
            tx, ("@id", id));
        await c.ExecuteAsync(
            "UPDATE operations SET status = 'pending', error = NULL, finished_at = NULL WHERE id = @id", tx, ("@id", id));
    }
}
