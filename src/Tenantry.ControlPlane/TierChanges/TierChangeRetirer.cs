using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Operations;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>
/// Retires the sources of switched tier changes once their grace (<c>Tenantry:TierChanges:SourceGrace</c>) is over:
/// every minute it reads <c>tier_changes</c> for switched rows whose <c>retire_after</c> has passed, so a restart
/// loses none. A source due while its operation still runs (a grace of zero, or a host that restarted mid-move) is
/// left to the operation's retire-source step, so the two never write the same export at once. Retiring twice in
/// turn is harmless: the export is written again and the drop finds nothing.
/// </summary>
internal sealed partial class TierChangeRetirer(
    IControlPlaneDatabase db,
    ITenantLifecycle lifecycle,
    TierChangeSteps steps,
    TimeProvider time,
    ILogger<TierChangeRetirer> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            do
            {
                await RetireDueAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Retires every source that is due now; one that fails is tried again next time.</summary>
    public async Task RetireDueAsync(CancellationToken ct)
    {
        try
        {
            foreach (var change in await db.ReadAsync(c => TierChangeStore.DueAsync(c, time.GetUtcNow()), ct))
            {
                try
                {
                    var (operation, tenant) = await db.ReadAsync(
                        async c => (await OperationStore.GetAsync(c, null, change.OperationId), await lifecycle.GetAsync(c, null, change.TenantId)), ct);
                    if (operation?.Status is OperationStatus.Pending or OperationStatus.Running)
                    {
                        continue;
                    }

                    if (tenant is not null)
                    {
                        await steps.RetireAsync(change, tenant, ct);
                    }
                }
#pragma warning disable CA1031 // One source that cannot be retired now must not hold up the others.
                catch (Exception ex) when (!ct.IsCancellationRequested)
#pragma warning restore CA1031
                {
                    Log.Failed(logger, change.TenantId, change.OperationId, ex);
                }
            }
        }
#pragma warning disable CA1031 // The store may be briefly unreachable; the next tick tries again.
        catch (Exception ex) when (!ct.IsCancellationRequested)
#pragma warning restore CA1031
        {
            Log.ReadFailed(logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Tenant {TenantId}: the source of tier change {OperationId} could not be retired; it is tried again")]
        public static partial void Failed(ILogger logger, Guid tenantId, Guid operationId, Exception exception);

        [LoggerMessage(2, LogLevel.Warning, "Could not read the tier changes due for retirement; trying again later")]
        public static partial void ReadFailed(ILogger logger, Exception exception);
    }
}
