CREATE TABLE order_attachments (
    tenant_id uuid NOT NULL,
    order_id uuid NOT NULL,
    name text NOT NULL,
    bytes bigint NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, order_id, name)
);
