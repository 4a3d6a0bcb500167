using Tenantry.Billing;
using Tenantry.Billing.Entitlements;
using Tenantry.Billing.Plans;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>Each tenant's job limits, from the plan it is on.</summary>
public interface IJobLimits
{
    ValueTask<JobLimits> ForAsync(Guid tenantId, CancellationToken cancellationToken = default);
}

/// <summary>
/// The plans in effect and the tenants' tiers, read at most every few seconds: a lease asks for
/// every ready tenant's limits, and a plan change may take that long to reach the workers.
/// </summary>
internal sealed class PlanJobLimits(IControlPlaneDatabase db, IRouteEntitlements entitlements, ITenantDirectory tenants, TimeProvider time) : IJobLimits, IDisposable
{
    private static readonly TimeSpan Fresh = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _load = new(1, 1);
    private volatile Snapshot? _snapshot;

    public async ValueTask<JobLimits> ForAsync(Guid tenantId, CancellationToken cancellationToken = default)
    {
        var snapshot = _snapshot;
        var now = time.GetUtcNow();
        if (snapshot is null || now - snapshot.At > Fresh || !snapshot.Tiers.ContainsKey(tenantId))
        {
            snapshot = await LoadAsync(snapshot, tenantId, cancellationToken);
        }

        return snapshot.Tiers.TryGetValue(tenantId, out var tier) ? snapshot.Plans.JobLimitsOf(snapshot.Plans.PlanOf(tenantId, tier)) : JobLimits.Default;
    }

    private async Task<Snapshot> LoadAsync(Snapshot? seen, Guid tenantId, CancellationToken cancellationToken)
    {
        await _load.WaitAsync(cancellationToken);
        try
        {
            var current = _snapshot;
            if (current is not null && current != seen && current.Tiers.ContainsKey(tenantId))
            {
                return current;
            }

            var now = time.GetUtcNow();
            var plans = await entitlements.InEffectAsync(now, cancellationToken);
            var list = await db.ReadAsync(c => tenants.ListAsync(c, null), cancellationToken);
            var loaded = new Snapshot(now, plans, list.ToDictionary(t => t.Id, t => t.Tier));
            _snapshot = loaded;
            return loaded;
        }
        finally
        {
            _load.Release();
        }
    }

    public void Dispose() => _load.Dispose();

    private sealed record Snapshot(DateTimeOffset At, PlansInEffect Plans, Dictionary<Guid, string> Tiers);
}
