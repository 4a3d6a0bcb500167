using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.Health;

namespace Tenantry.ControlPlane.Health;

/// <summary>
/// Every <see cref="HealthOptions.MaintenanceInterval"/>: rolls each finished hour whose minutes
/// changed up into its hourly rows (the exact merge of its minutes, computed again whole, so a late
/// flush into a rolled-up hour just rolls it up again), then deletes minute rows older than
/// <see cref="HealthOptions.MinuteRetention"/>, hourly rows older than
/// <see cref="HealthOptions.HourRetentionMonths"/> and batch ids no retry can still bring. Several
/// control-plane replicas may run it at once: an hour's rows are replaced only if its minutes did
/// not change while they were read.
/// </summary>
internal sealed partial class HealthMaintenance(
    IControlPlaneDatabase db, IOptions<HealthOptions> options, TimeProvider time, ILogger<HealthMaintenance> logger) : BackgroundService
{
    /// <summary>Hours rolled up in one round at most (a host back after a long stop catches up over a few rounds).</summary>
    private const int HoursPerRound = 48;

    /// <summary>One round: roll-ups, then retention. Returns the hours rolled up and the minute and hour rows deleted.</summary>
    public async Task<(int RolledUp, int Minutes, int Hours)> RunOnceAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var now = time.GetUtcNow();
        var minute = TenantHealthService.UnixMinute(now);
        var minuteCutoff = minute - (long)o.MinuteRetention.TotalMinutes;
        var firstWholeHour = (minuteCutoff + 59) / 60;
        var rolled = 0;
        foreach (var (hour, version) in await db.ReadAsync(c => TenantHealthStore.PendingHoursAsync(c, minute / 60, HoursPerRound), cancellationToken))
        {
            if (hour < firstWholeHour)
            {
                continue; // Its minutes are (partly) gone: its hourly rows stay as they were rolled up.
            }

            var rows = await db.ReadAsync(c => TenantHealthStore.MinutesAsync(c, hour * 60, (hour + 1) * 60), cancellationToken);
            var merged = rows.GroupBy(r => r.TenantId).Select(g =>
            {
                var latency = new LatencySketch();
                foreach (var r in g)
                {
                    latency.Merge(r.Latency);
                }

                return new HealthRow(g.Key, hour * 60, g.Sum(r => r.Requests), g.Sum(r => r.Status4xx), g.Sum(r => r.Status5xx), g.Sum(r => r.Throttled), latency);
            }).ToList();
            if (await db.WriteAsync((c, tx) => TenantHealthStore.ReplaceHourAsync(c, tx, hour, version, merged), cancellationToken))
            {
                rolled++;
            }
        }

        var hourCutoff = TenantHealthService.UnixMinute(now.AddMonths(-o.HourRetentionMonths)) / 60;
        var batchCutoff = minute - (long)o.MaxLateness.TotalMinutes - 60;
        var (minutes, hours) = await db.WriteAsync(async (c, tx) =>
        {
            await TenantHealthStore.ForgetPendingBeforeAsync(c, tx, firstWholeHour);
            return await TenantHealthStore.TrimAsync(c, tx, minuteCutoff, hourCutoff, batchCutoff);
        }, cancellationToken);
        if (rolled > 0 || minutes > 0 || hours > 0)
        {
            Log.Maintained(logger, rolled, minutes, hours);
        }

        return (rolled, minutes, hours);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(LoopBackOff.After(options.Value.MaintenanceInterval, failures), time, stoppingToken);
                await RunOnceAsync(stoppingToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                Log.Failed(logger, ex);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Per-tenant health: rolled up {Hours} hours; deleted {Minutes} minute rows and {HourRows} hourly rows past retention")]
        public static partial void Maintained(ILogger logger, int hours, int minutes, int hourRows);

        [LoggerMessage(2, LogLevel.Warning, "Per-tenant health roll-up or retention failed; trying again")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
