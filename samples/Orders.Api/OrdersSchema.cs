using Tenantry.Data.Migrations;

namespace Orders.Api;

/// <summary>The app's tables, once; Tenantry.Data renders them for the pool (with tenant_id) and for dedicated files.</summary>
public static class OrdersSchema
{
    public static TenantSchema Schema { get; } = new("orders-api",
    [
        new TenantMigration(1, "create orders", new CreateTable(new TableDefinition(
            "orders",
            [
                new ColumnDefinition("id", ColumnType.Uuid),
                new ColumnDefinition("number", ColumnType.Text),
                new ColumnDefinition("amount", ColumnType.Numeric),
                new ColumnDefinition("note", ColumnType.Text, Nullable: true),
                new ColumnDefinition("created_by", ColumnType.Text),
                new ColumnDefinition("created_at", ColumnType.Timestamp),
            ],
            ["id"])
        {
            Indexes = [new IndexDefinition("orders_created_at_idx", ["created_at"])],
        })),
        new TenantMigration(2, "order attachments", new CreateTable(new TableDefinition(
            "order_attachments",
            [
                new ColumnDefinition("order_id", ColumnType.Uuid),
                new ColumnDefinition("name", ColumnType.Text),
                new ColumnDefinition("bytes", ColumnType.Integer64),
                new ColumnDefinition("created_at", ColumnType.Timestamp),
            ],
            ["order_id", "name"]))),
    ]);
}
