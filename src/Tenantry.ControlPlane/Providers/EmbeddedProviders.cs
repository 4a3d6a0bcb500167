using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Compute on one machine: pool and bridge tenants are routed to the shared app instance, silo
/// tenants get a dedicated port, a deployment manifest and a dedicated app process that
/// <see cref="LocalAppSupervisor"/> starts from it and keeps running (stopped while the tenant is
/// suspended, removed at offboarding). The routing table lives in the control-plane store, where
/// the gateway reads it.
/// </summary>
internal sealed class LocalComputeProvider(
    IControlPlaneDatabase db, IOptions<TenantryOptions> options, IOptions<LocalComputeOptions> compute, TimeProvider time, LocalAppSupervisor supervisor) : ITenantComputeProvider
{
    private readonly string _root = Path.Combine(options.Value.DataPath, "compute");

    public async Task<JsonObject> DeployAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var dedicated = tenant.Isolation == IsolationModel.Silo;
        var upstream = await db.WriteAsync(
            async (c, tx) =>
            {
                var existing = await RouteStore.UpstreamAsync(c, tx, tenant.Id);
                if (existing is string found)
                {
                    return found;
                }

                var target = "shared";
                if (dedicated)
                {
                    var taken = (await RouteStore.DedicatedUpstreamsAsync(c, tx))
                        .Select(u => int.Parse(u[(u.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture)).ToHashSet();
                    var port = compute.Value.FirstDedicatedPort;
                    while (taken.Contains(port) || port == options.Value.Ports.ControlPlane || port == options.Value.Ports.Gateway)
                    {
                        port++;
                    }

                    target = $"http://127.0.0.1:{port}";
                }

                await RouteStore.InsertAsync(c, tx, tenant.Id, tenant.Slug, dedicated, target, time.GetUtcNow());
                return target;
            },
            cancellationToken);

        var result = new JsonObject { ["provider"] = "local", ["mode"] = dedicated ? "dedicated" : "shared", ["upstream"] = upstream };
        if (dedicated)
        {
            var folder = Path.Combine(_root, tenant.Slug);
            Directory.CreateDirectory(folder);
            var manifest = Path.Combine(folder, "deployment.json");
            var body = new JsonObject
            {
                ["tenantId"] = tenant.Id.ToString(),
                ["slug"] = tenant.Slug,
                ["upstream"] = upstream,
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
            AtomicFile.Write(manifest, body);
            result["manifest"] = manifest;
            if (supervisor.Enabled)
            {
                await supervisor.EnsureRunningAsync(tenant.Slug, cancellationToken);
                result["process"] = "supervised";
            }
        }

        return result;
    }

    public async Task SetRoutingAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken)
    {
        await db.WriteAsync(
            (c, tx) => RouteStore.SetEnabledAsync(c, tx, tenant.Id, enabled, time.GetUtcNow()),
            cancellationToken);
        if (tenant.Isolation == IsolationModel.Silo && File.Exists(Path.Combine(_root, tenant.Slug, "deployment.json")))
        {
            // A suspended silo tenant's instance is stopped; reactivation starts it again.
            await (enabled ? supervisor.EnsureRunningAsync(tenant.Slug, cancellationToken) : supervisor.StopAsync(tenant.Slug, cancellationToken));
        }
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        await supervisor.StopAsync(tenant.Slug, cancellationToken);
        await db.WriteAsync((c, tx) => RouteStore.DeleteAsync(c, tx, tenant.Id), cancellationToken);
        var folder = Path.Combine(_root, tenant.Slug);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

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
