-- Orders. The same SQL runs on SQLite and PostgreSQL, for every isolation model. Every table is
-- keyed by tenant_id, as the pool requires: there Tenantry adds row-level security (PostgreSQL) or
-- the guarded connection (SQLite); in a bridge schema or silo database it holds the one tenant.
CREATE TABLE orders (
    tenant_id uuid NOT NULL,
    id uuid NOT NULL,
    number text NOT NULL,
    amount numeric NOT NULL,
    note text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX orders_created_at_idx ON orders (tenant_id, created_at);
