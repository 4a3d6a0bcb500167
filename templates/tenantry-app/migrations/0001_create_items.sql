-- The tenant's items. Plain SQL that runs on PostgreSQL and SQLite alike.
-- Every table has tenant_id: in the pool, Tenantry keeps tenants apart on it (row-level security
-- on PostgreSQL, the tenant filter on SQLite); in a tenant's own database it holds that tenant's id.
-- Keys and indexes lead with tenant_id, so no tenant's query scans or collides with another's rows.
CREATE TABLE items (
    tenant_id UUID NOT NULL,
    id UUID NOT NULL,
    name VARCHAR(200) NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX items_by_name ON items (tenant_id, name);
