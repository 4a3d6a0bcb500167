using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.Extensions.Options;
using Tenantry;
using Tenantry.AspNetCore;
using Tenantry.Data;
using Tenantry.Data.Migrations;

namespace Orders.Api;

/// <summary>
/// Where a tenant's orders live, learnt one way, never from the request beyond the signed tenant context:
/// <list type="bullet">
/// <item>started by Tenantry (the instance contract), <see cref="InstanceDataLocator"/> names each tenant's
/// database: a dedicated instance's own (<c>TENANTRY_DATABASE</c>), a shared instance's pool and bridge tenants'
/// from the control plane's data endpoint (<c>TENANTRY_DATA_URL</c>);</item>
/// <item>otherwise the embedded layout under the data directory: pool tenants share <c>databases/pool.db</c>
/// (enforced tenant filter), bridge and silo tenants have their own file.</item>
/// </list>
/// The app never runs DDL: its migrations (<c>migrations/*.sql</c>) are a release's, which the control
/// plane applies to every tenant by its isolation model at onboarding and in rollouts.
/// <para>
/// What the locator says is kept for <see cref="RelocateAfter"/>, then asked again: a tenant that is
/// suspended or offboarded meanwhile (or whose database is gone) gets 503, not its old placement.
/// </para>
/// </summary>
internal sealed class OrdersData(
    ITenantDataSource data,
    IOptions<TenantryAppOptions> options,
    TimeProvider time,
    InstanceDataLocator locator)
{
    public static readonly TimeSpan RelocateAfter = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<Guid, (TenantDataContext Context, long LocatedAt)> _located = new();
    private readonly string _dataDir = options.Value.DataPath;

    /// <param name="readOnly">A request that only reads: on SQLite it takes no write lock, so readers never queue behind each other.</param>
    public async Task<TenantSession> OpenAsync(ITenantContext tenant, CancellationToken cancellationToken, bool readOnly = false)
    {
        var context = await LocateAsync(tenant, cancellationToken);
        try
        {
            return readOnly ? await data.OpenReadSessionAsync(context, cancellationToken) : await data.OpenSessionAsync(context, cancellationToken);
        }
        catch (Exception ex) when (ex is InvalidOperationException or DbException)
        {
            // The tenant's own file went away (offboarded since it was located): nothing to serve, and not a server fault.
            if (context.Target is SqliteFileTarget file && !File.Exists(file.FilePath))
            {
                _located.TryRemove(tenant.TenantId, out _);
                throw new TenantDataUnavailableException(tenant.TenantId);
            }

            throw;
        }
    }

    private async Task<TenantDataContext> LocateAsync(ITenantContext tenant, CancellationToken cancellationToken)
    {
        var now = time.GetTimestamp();
        if (_located.TryGetValue(tenant.TenantId, out var known) && known.Context.Isolation == tenant.Isolation && known.Context.Slug == tenant.Slug
            && (!locator.Configured || time.GetElapsedTime(known.LocatedAt, now) < RelocateAfter))
        {
            return known.Context;
        }

        TenantDataContext context;
        if (locator.Configured)
        {
            var located = await locator.LocateAsync(tenant.TenantId, tenant.Slug, tenant.Isolation, cancellationToken);
            if (located is null)
            {
                _located.TryRemove(tenant.TenantId, out _);
                throw new TenantDataUnavailableException(tenant.TenantId);
            }

            context = located;
        }
        else
        {
            context = Context(tenant, tenant.Isolation == IsolationModel.Pool
                ? new SqlitePoolTarget(Path.Combine(_dataDir, "databases", "pool.db"))
                : SqliteFileTarget.ForEmbedded(_dataDir, tenant.Isolation, tenant.Slug));
        }

        _located[tenant.TenantId] = (context, now);
        return context;
    }

    private static TenantDataContext Context(ITenantContext tenant, TenantDataTarget target) =>
        new() { TenantId = tenant.TenantId, Slug = tenant.Slug, Isolation = tenant.Isolation, Target = target };
}

/// <summary>The tenant has no database this instance can reach (not provisioned yet, not active, or gone): answered with 503.</summary>
internal sealed class TenantDataUnavailableException(Guid tenantId)
    : Exception($"Tenant {tenantId} has no database yet.")
{
    public Guid TenantId { get; } = tenantId;
}
