-- The notes of every tenant. Portable SQL: it runs unchanged on SQLite and PostgreSQL.
-- tenant_id on every row: the pool model shares the table between tenants, and the app filters
-- every query on it. It is a uuid because on a PostgreSQL pool Tenantry's row-level security
-- compares it with the uuid of the app.tenant_id setting (SQLite keeps the same text as TEXT would:
-- a UUID's text is no number, so the column's numeric affinity leaves it alone).
CREATE TABLE notes (
    id TEXT NOT NULL,
    tenant_id uuid NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
