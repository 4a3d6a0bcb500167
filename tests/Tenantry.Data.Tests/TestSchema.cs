using Tenantry.Data.Migrations;

namespace Tenantry.Data.Tests;

/// <summary>A small tenant app schema (orders), in three migrations, as the sample app will have.</summary>
internal static class TestSchema
{
    public static TenantSchema Orders { get; } = new("orders-app",
    [
        new TenantMigration(1, "create orders", new CreateTable(new TableDefinition(
            "orders",
            [
                new ColumnDefinition("id", ColumnType.Uuid),
                new ColumnDefinition("number", ColumnType.Text),
                new ColumnDefinition("amount", ColumnType.Numeric),
                new ColumnDefinition("note", ColumnType.Text, Nullable: true),
            ],
            ["id"])
        {
            UniqueKeys = [["number"]],
        })),
        new TenantMigration(2, "orders created_at",
            new AddColumn("orders", new ColumnDefinition("created_at", ColumnType.Timestamp) { PostgresDefault = "now()", SqliteDefault = "CURRENT_TIMESTAMP" }),
            new CreateIndex("orders", new IndexDefinition("orders_created_at_idx", ["created_at"]))),
        new TenantMigration(3, "customers", new CreateTable(new TableDefinition(
            "customers",
            [
                new ColumnDefinition("id", ColumnType.Uuid),
                new ColumnDefinition("email", ColumnType.Text),
            ],
            ["id"])
        {
            UniqueKeys = [["email"]],
        })),
    ]);
}
