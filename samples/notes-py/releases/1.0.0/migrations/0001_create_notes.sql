-- The notes of every tenant. Portable SQL: it runs unchanged on SQLite and PostgreSQL.
-- tenant_id on every row: the pool model shares the table between tenants, and the app filters
-- every query on it (Tenantry adds row-level security on PostgreSQL pools).
CREATE TABLE notes (
    id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
