using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing;

/// <summary>Billing's tables in the control-plane database: plans, meters, usage, invoices, costs. Money is exact decimal text.</summary>
public static class BillingSchema
{
    /// <summary>Billing's part of the control-plane schema; usage events differ by engine.</summary>
    public static SchemaPart Part { get; } = new(
        "Billing",
        SchemaPart.Portable("Billing", Tables).Sqlite + UsageEventsSqlite,
        SchemaPart.Portable("Billing", Tables).Postgres + UsageEventsPostgres);

    private const string Tables = """
        CREATE TABLE IF NOT EXISTS plans (
            id TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS tenant_plans (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            plan_id TEXT NOT NULL,
            effective_from TEXT NOT NULL,
            actor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (tenant_id, effective_from)
        );
        CREATE TABLE IF NOT EXISTS meters (
            key TEXT PRIMARY KEY,
            definition TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        -- A voided usage event stays in usage_events (a replay of it is still a duplicate) and is left out of every read.
        CREATE TABLE IF NOT EXISTS usage_voids (
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            reason TEXT NULL,
            actor TEXT NOT NULL,
            voided_at TEXT NOT NULL,
            PRIMARY KEY (source, id)
        );
        CREATE TABLE IF NOT EXISTS invoices (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            period TEXT NOT NULL,
            status TEXT NOT NULL,
            total TEXT NOT NULL,
            document TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS invoices_tenant_period ON invoices(tenant_id, period);
        CREATE TABLE IF NOT EXISTS cost_lines (
            id TEXT PRIMARY KEY,
            resource TEXT NOT NULL,
            amount TEXT NOT NULL,
            period TEXT NOT NULL,
            tenant_id TEXT NULL,
            tags TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS cost_lines_period ON cost_lines(period);

        -- The days the price book was applied to (Costs/PriceBookRun): a day listed here is not run again on its own.
        CREATE TABLE IF NOT EXISTS cost_runs (
            day TEXT PRIMARY KEY,
            lines INTEGER NOT NULL,
            total TEXT NOT NULL,
            ran_at TEXT NOT NULL
        );
        """;

    /// <summary>Usage events on SQLite: seq is the rowid; (source, id) unique for dedup.</summary>
    private const string UsageEventsSqlite = """

        CREATE TABLE IF NOT EXISTS usage_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            type TEXT NOT NULL,
            time TEXT NOT NULL,
            data TEXT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS usage_events_dedup ON usage_events(source, id);
        CREATE INDEX IF NOT EXISTS usage_events_tenant_type_time ON usage_events(tenant_id, type, time);
        """;

    /// <summary>
    /// Usage events on PostgreSQL, where each insert is paid in index maintenance (the bulk of the
    /// server's CPU per event): the dedup key (source, id) is the primary key, so seq (arrival
    /// order, only read as the tie-break of equal times) has no index of its own, and tenant_id
    /// and time are uuid and timestamptz (16 and 8 bytes instead of 36 and 28 characters of text,
    /// compared as such). seq is numbered by the ingestor as batches arrive
    /// (<see cref="Usage.ArrivalNumbers"/>), not by a sequence the server would step per
    /// row. time keeps microseconds, PostgreSQL's precision; the ingestor truncates, which never
    /// moves an event out of its billing period. A database made by an earlier version (text
    /// columns, seq as primary key, seq an identity column) is converted in place the first time
    /// this runs; its numbers stay below the new ones.
    /// </summary>
    private const string UsageEventsPostgres = """

        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                       AND table_name = 'usage_events' AND column_name = 'tenant_id' AND data_type = 'text') THEN
                ALTER TABLE usage_events DROP CONSTRAINT usage_events_pkey;
                ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY USING INDEX usage_events_dedup;
                ALTER TABLE usage_events
                    ALTER COLUMN tenant_id TYPE uuid USING tenant_id::uuid,
                    ALTER COLUMN time TYPE timestamptz USING (CASE WHEN length(time) = 28 THEN left(time, 26) || 'Z' ELSE time END)::timestamptz;
            END IF;
        END $$;
        CREATE TABLE IF NOT EXISTS usage_events (
            seq BIGINT NOT NULL,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            tenant_id UUID NOT NULL,
            type TEXT NOT NULL,
            time TIMESTAMPTZ NOT NULL,
            data TEXT NULL,
            CONSTRAINT usage_events_pkey PRIMARY KEY (source, id)
        );
        CREATE INDEX IF NOT EXISTS usage_events_tenant_type_time ON usage_events(tenant_id, type, time);
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                       AND table_name = 'usage_events' AND column_name = 'seq' AND is_identity = 'YES') THEN
                ALTER TABLE usage_events ALTER COLUMN seq DROP IDENTITY;
            END IF;
        END $$;
        """;
}
