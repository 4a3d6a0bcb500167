using Tenantry.ControlPlane.Rollouts;
using Tenantry.Billing;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Health;
using Tenantry.ControlPlane.Jobs;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Events;
using Tenantry.ControlPlane.Identity;
using Tenantry.ControlPlane.Instances;
using Tenantry.ControlPlane.Mail;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Providers.Postgres;
using Tenantry.ControlPlane.Routing;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane;

/// <summary>
/// The control-plane database: every feature's part of the schema, in the order they are applied
/// (a table before the tables that reference it). Each part is declared by the store that owns it.
/// </summary>
internal static class ControlPlaneSchema
{
    public static IReadOnlyList<SchemaPart> Parts { get; } =
    [
        TenantStore.Schema,
        Cells.CellPlacement.Schema,
        OperationStore.Schema,
        IdempotencyStore.Schema,
        AuditLog.Schema,
        EventOutbox.Schema,
        WebhookStore.Schema,
        ClientStore.Schema,
        TenantUserStore.Schema,
        InvitationStore.Schema,
        TenantSignIn.Schema,
        AuthorizationCodes.Schema,
        RouteStore.Schema,
        TenantCredentials.Schema,
        TenantPlacement.Schema,
        PolicyStore.Schema,
        BillingSchema.Part,
        AppStore.Schema,
        InstanceStore.Schema,
        Nodes.NodeStore.Schema,
        TenantHealthStore.Schema,
        RolloutStore.Schema,
        Migrations.FleetMigrationStore.Schema,
        MailOutbox.Schema,
        JobStore.Schema,
        Keys.KeyStore.Schema,
        TierChanges.TierChangeStore.Schema,
    ];

    public static string Sqlite { get; } = SchemaPart.SqliteScript(Parts);

    public static string Postgres { get; } = SchemaPart.PostgresScript(Parts);

    /// <summary>Columns added to tables since they were first created, for a store made before them.</summary>
    public static IReadOnlyList<(string Table, string Column, string Definition)> AddedColumns { get; } = [.. Parts.SelectMany(p => p.AddedColumns)];
}
