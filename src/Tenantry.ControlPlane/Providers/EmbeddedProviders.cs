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
