namespace Tenantry.ControlPlane.Storage;

/// <summary>The control-plane tables. Portable SQL (SQLite and PostgreSQL share it).</summary>
internal static class ControlPlaneSchema
{
    public const string Ddl = """
        CREATE TABLE IF NOT EXISTS tenants (
            id TEXT PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            tier TEXT NOT NULL,
            isolation TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT NULL,
            admin_email TEXT NOT NULL,
            config TEXT NOT NULL,
            resources TEXT NOT NULL,
            version INTEGER NOT NULL,
            current_operation_id TEXT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tenants_status_id ON tenants(status, id);
        CREATE INDEX IF NOT EXISTS tenants_tier_id ON tenants(tier, id);

        CREATE TABLE IF NOT EXISTS operations (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            tenant_id TEXT NOT NULL REFERENCES tenants(id),
            status TEXT NOT NULL,
            error TEXT NULL,
            actor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            started_at TEXT NULL,
            finished_at TEXT NULL
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

        CREATE TABLE IF NOT EXISTS idempotency_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            status_code INTEGER NOT NULL,
            location TEXT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (scope, key)
        );

        CREATE TABLE IF NOT EXISTS audit_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            tenant_id TEXT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS audit_tenant ON audit_events(tenant_id, seq);

        CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_key TEXT NOT NULL UNIQUE,
            tenant_id TEXT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT NULL
        );

        CREATE TABLE IF NOT EXISTS clients (
            client_id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            display_name TEXT NOT NULL,
            tenant_id TEXT NULL,
            scopes TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );

        CREATE TABLE IF NOT EXISTS tenant_users (
            tenant_id TEXT NOT NULL,
            email TEXT NOT NULL,
            role TEXT NOT NULL,
            status TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, email)
        );

        CREATE TABLE IF NOT EXISTS tenant_routes (
            tenant_id TEXT PRIMARY KEY,
            slug TEXT NOT NULL,
            mode TEXT NOT NULL,
            upstream TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        );
        """;
}
