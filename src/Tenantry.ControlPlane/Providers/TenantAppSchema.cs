using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// The tenant app's schema the control plane applies to every tenant database (the pool, each
/// bridge schema, each silo database). An app registers its own <see cref="TenantSchema"/> in DI
/// before <c>AddTenantryControlPlane()</c>; without one, tenants get this minimal one.
/// </summary>
public static class TenantAppSchema
{
    public static TenantSchema Default { get; } = new("tenantry-default",
    [
        new TenantMigration(1, "tenant settings", new CreateTable(new TableDefinition(
            "tenant_settings",
            [
                new ColumnDefinition("name", ColumnType.Text),
                new ColumnDefinition("value", ColumnType.Text),
            ],
            ["name"]))),
    ]);
}
