namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// Weighted fair share across tenants (stride scheduling): each tenant has a pass that grows by
/// 1/weight for every job it is given, and the next job goes to the ready tenant with the lowest
/// pass. A tenant that comes back after being idle starts at the current virtual time, not at its
/// old pass, so idleness earns no burst. A quiet tenant's job is therefore given out at the next
/// lease whatever another tenant's backlog: its wait is at most one job's run time per worker.
/// The state is this process's; several replicas each share out their own leases fairly.
/// </summary>
internal sealed class FairShare
{
    private readonly Lock _gate = new();
    private readonly Dictionary<Guid, double> _pass = [];
    private double _virtualTime;

    /// <summary>
    /// How many jobs each candidate gets out of <paramref name="max"/>: one at a time to the lowest
    /// pass among those with room (their free concurrency), charging each pick.
    /// </summary>
    public Dictionary<Guid, int> Share(IReadOnlyList<(Guid TenantId, int Weight, int Room)> candidates, int max)
    {
        var given = new Dictionary<Guid, int>();
        lock (_gate)
        {
            var room = candidates.ToDictionary(c => c.TenantId, c => c.Room);
            var weight = candidates.ToDictionary(c => c.TenantId, c => Math.Max(1, c.Weight));
            foreach (var c in candidates)
            {
                _pass[c.TenantId] = Math.Max(_pass.GetValueOrDefault(c.TenantId, _virtualTime), _virtualTime);
            }

            for (var i = 0; i < max; i++)
            {
                Guid? pick = null;
                foreach (var c in candidates)
                {
                    if (room[c.TenantId] > 0 && (pick is null || _pass[c.TenantId] < _pass[pick.Value]))
                    {
                        pick = c.TenantId;
                    }
                }

                if (pick is not { } tenant)
                {
                    break;
                }

                room[tenant]--;
                given[tenant] = given.GetValueOrDefault(tenant) + 1;
                _virtualTime = _pass[tenant];
                _pass[tenant] += 1.0 / weight[tenant];
            }
        }

        return given;
    }

    /// <summary>Gives back the charge of jobs that were shared out but not there to take (fewer were ready than room allowed).</summary>
    public void Refund(Guid tenantId, int jobs, int weight)
    {
        if (jobs <= 0)
        {
            return;
        }

        lock (_gate)
        {
            if (_pass.TryGetValue(tenantId, out var pass))
            {
                _pass[tenantId] = Math.Max(_virtualTime, pass - (jobs / (double)Math.Max(1, weight)));
            }
        }
    }

    public void Forget(Guid tenantId)
    {
        lock (_gate)
        {
            _pass.Remove(tenantId);
        }
    }
}
