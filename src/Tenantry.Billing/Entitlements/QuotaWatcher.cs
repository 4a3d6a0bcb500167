using Tenantry.ControlPlane;
using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Events;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Entitlements;

/// <summary>
/// After usage lands, checks the soft quotas of the tenants that got it. The first crossing of a
/// soft quota in a month publishes a <c>quota.exceeded</c> event and writes an audit entry
/// (<c>quota.soft_exceeded</c>), in one transaction, keyed by tenant, meter and month so it is raised once.
/// </summary>
public sealed partial class QuotaWatcher : BackgroundService
{
    public const string AuditAction = "quota.soft_exceeded";
    private readonly ConcurrentDictionary<Guid, byte> _dirty = new();
    private readonly IControlPlaneDatabase _db;
    private readonly IEventOutbox _events;
    private readonly ITenantDirectory _tenants;
    private readonly BillingCatalog _catalog;
    private readonly TimeProvider _time;
    private readonly IOptions<BillingOptions> _options;
    private readonly ILogger<QuotaWatcher> _logger;

    public QuotaWatcher(UsageIngestor ingestor, IControlPlaneDatabase db, IEventOutbox events, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time, IOptions<BillingOptions> options, ILogger<QuotaWatcher> logger)
    {
        ArgumentNullException.ThrowIfNull(ingestor);
        (_db, _events, _tenants, _catalog, _time, _options, _logger) = (db, events, tenants, catalog, time, options, logger);
        ingestor.Committed += tenants =>
        {
            foreach (var t in tenants)
            {
                _dirty.TryAdd(t, 0);
            }
        };
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(LoopBackOff.After(_options.Value.QuotaCheckInterval, failures), _time, stoppingToken);
                var failed = false;
                foreach (var tenant in _dirty.Keys)
                {
                    _dirty.TryRemove(tenant, out _);
                    try
                    {
                        await CheckAsync(tenant, stoppingToken);
                    }
#pragma warning disable CA1031 // One tenant's failed check must not end the watcher; the tenant is checked again after a pause.
                    catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
#pragma warning restore CA1031
                    {
                        Log.CheckFailed(_logger, tenant, ex);
                        _dirty.TryAdd(tenant, 0);
                        failed = true;
                    }
                }

                failures = failed ? failures + 1 : 0;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task CheckAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var snapshot = await _catalog.GetAsync(cancellationToken);
        var now = _time.GetUtcNow();
        var period = BillingPeriod.Of(now);
        var crossed = await _db.ReadAsync(async c =>
        {
            var tenant = await _tenants.GetAsync(c, null, tenantId);
            if (tenant is null || await EntitlementService.PlanOfAsync(c, tenant, snapshot, now) is not { } plan)
            {
                return [];
            }

            var result = new List<(string PlanId, string Meter, decimal Limit, decimal Used)>();
            foreach (var quota in plan.Quotas.Where(q => q.Kind == "soft"))
            {
                if (snapshot.Meters.TryGetValue(quota.Meter, out var meter))
                {
                    var used = await UsageReader.TotalAsync(c, meter, tenantId, period.Start, period.End);
                    if (used > quota.Limit)
                    {
                        result.Add((plan.Id, quota.Meter, quota.Limit, used));
                    }
                }
            }

            return result;
        }, cancellationToken);

        foreach (var (planId, meter, limit, used) in crossed)
        {
            var payload = new JsonObject
            {
                ["tenantId"] = tenantId.ToString(),
                ["planId"] = planId,
                ["meter"] = meter,
                ["kind"] = "soft",
                ["limit"] = limit,
                ["used"] = used,
                ["period"] = period.ToString(),
            };
            var raised = await _db.WriteAsync(async (c, tx) =>
            {
                var inserted = await _events.AppendAsync(
                    c, tx, new OutboxEvent(EventTypes.QuotaExceeded, tenantId, payload.DeepClone().AsObject(), $"{EventTypes.QuotaExceeded}:{tenantId}:{meter}:{period}"), now);
                if (inserted)
                {
                    await AuditLog.AppendAsync(c, tx, new AuditEvent
                    {
                        Id = Guid.NewGuid(), Time = now, Actor = "system:metering", TenantId = tenantId, Action = AuditAction,
                        Outcome = "flagged", Detail = payload.DeepClone().AsObject(),
                    });
                }

                return inserted;
            }, cancellationToken);
            if (raised)
            {
                Log.SoftQuotaCrossed(_logger, tenantId, meter, limit, used);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "Tenant {TenantId} passed its soft quota on {Meter}: {Used} of {Limit}")]
        public static partial void SoftQuotaCrossed(ILogger logger, Guid tenantId, string meter, decimal limit, decimal used);

        [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "Checking the quotas of tenant {TenantId} failed; it is checked again later")]
        public static partial void CheckFailed(ILogger logger, Guid tenantId, Exception exception);
    }
}
