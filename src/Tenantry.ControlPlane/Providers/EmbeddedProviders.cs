using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.Providers;

/// <summary>Tenant users and machine clients in the control-plane store (the OIDC issuer reads them).</summary>
internal sealed class EmbeddedIdentityProvider(IControlPlaneDatabase db, TimeProvider time) : ITenantIdentityProvider
{
    public async Task<JsonObject> ConfigureAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        await db.WriteAsync(
            (c, tx) => c.ExecuteAsync(
                """
                INSERT INTO tenant_users (tenant_id, email, role, status, disabled, created_at)
                VALUES (@id, @email, 'admin', 'invited', 0, @now) ON CONFLICT (tenant_id, email) DO NOTHING
                """,
                tx, ("@id", tenant.Id), ("@email", tenant.AdminEmail), ("@now", time.GetUtcNow())),
            cancellationToken);
        return new JsonObject { ["provider"] = "embedded-oidc", ["adminUser"] = tenant.AdminEmail, ["adminStatus"] = "invited" };
    }

    public Task SetAccessAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken) => db.WriteAsync(
        async (c, tx) =>
        {
            await c.ExecuteAsync("UPDATE tenant_users SET disabled = @off WHERE tenant_id = @id", tx, ("@id", tenant.Id), ("@off", !enabled));
            await c.ExecuteAsync("UPDATE clients SET disabled = @off WHERE tenant_id = @id", tx, ("@id", tenant.Id), ("@off", !enabled));
        },
        cancellationToken);
}

/// <summary>Messages go to the outbox table; delivery (webhooks, mail) reads from there.</summary>
internal sealed class OutboxNotificationProvider(IControlPlaneDatabase db, TimeProvider time) : INotificationProvider
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Providers", """

        CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_key TEXT NOT NULL UNIQUE,
            tenant_id TEXT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT NULL
        );
        """);

    public Task NotifyAsync(TenantRef tenant, string messageKey, string type, JsonObject payload, CancellationToken cancellationToken) => db.WriteAsync(
        (c, tx) => c.ExecuteAsync(
            "INSERT INTO outbox (message_key, tenant_id, type, payload, created_at) VALUES (@key, @tenant, @type, @payload, @now) ON CONFLICT (message_key) DO NOTHING",
            tx, ("@key", messageKey), ("@tenant", tenant.Id), ("@type", type), ("@payload", payload.ToJsonString()), ("@now", time.GetUtcNow())),
        cancellationToken);
}
