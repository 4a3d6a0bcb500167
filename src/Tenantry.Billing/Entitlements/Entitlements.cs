using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Entitlements;

public sealed record EntitlementResponse(string Meter, string Kind, decimal Limit, decimal Used, decimal Remaining, bool Exceeded);

public sealed record EntitlementsResponse(string TenantId, string PlanId, string Period, IReadOnlyList<EntitlementResponse> Quotas, IReadOnlyList<RateLimit> RateLimits);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record EntitlementCheckRequest(string? Meter, decimal? Quantity);

/// <summary>
/// Quotas of the tenant's plan against its usage this month. A hard quota refuses what would
/// pass it (402 from the check, 429 from the metered API); a soft one only reports.
/// </summary>
/// <summary>The quotas of a tenant's plan that other parts of the platform enforce themselves.</summary>
public interface ITenantQuotas
{
    /// <summary>The most bytes the tenant may store (its plan's hard <c>storage_bytes</c> quota), or null when it has none.</summary>
    Task<long?> StorageLimitAsync(Guid tenantId, CancellationToken cancellationToken);
}

public sealed class EntitlementService(IControlPlaneDatabase db, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time) : ITenantQuotas
{
    private readonly ConcurrentDictionary<(Guid Tenant, string Period), long> _apiCalls = new();
    private readonly ConcurrentDictionary<Guid, (BillingCatalog.Snapshot Snapshot, Plan? Plan)> _plans = new();

    public const string QuotaExceeded = "quota-exceeded";

    /// <summary>The meter whose hard quota caps what a tenant may store (enforced on every write, not per month).</summary>
    public const string StorageMeterKey = "storage_bytes";

    public async Task<EntitlementsResponse?> ForTenantAsync(string idOrSlug, CancellationToken cancellationToken = default)
    {
        var snapshot = await catalog.GetAsync(cancellationToken);
        var now = time.GetUtcNow();
        var period = BillingPeriod.Of(now);
        return await db.ReadAsync<EntitlementsResponse?>(async c =>
        {
            var tenant = await tenants.FindAsync(c, null, idOrSlug);
            if (tenant is null)
            {
                return null;
            }

            var plan = await PlanOfAsync(c, tenant, snapshot, now);
            var quotas = new List<EntitlementResponse>();
            foreach (var quota in plan?.Quotas ?? [])
            {
                if (snapshot.Meters.TryGetValue(quota.Meter, out var meter))
                {
                    var used = await UsageReader.TotalAsync(c, meter, tenant.Id, period.Start, period.End);
                    quotas.Add(new EntitlementResponse(quota.Meter, quota.Kind, quota.Limit, used, Math.Max(0, quota.Limit - used), used > quota.Limit));
                }
            }

            return new EntitlementsResponse(tenant.Id.ToString(), plan?.Id ?? tenant.Tier, period.ToString(), quotas, plan?.RateLimits ?? []);
        }, cancellationToken);
    }

    /// <summary>Null when the tenant may consume <paramref name="quantity"/> more of the meter; else the quota it would pass.</summary>
    public async Task<(bool Found, Quota? Blocking, decimal Used)> CheckAsync(string idOrSlug, string meterKey, decimal quantity, CancellationToken cancellationToken = default)
    {
        var snapshot = await catalog.GetAsync(cancellationToken);
        var now = time.GetUtcNow();
        var period = BillingPeriod.Of(now);
        return await db.ReadAsync(async c =>
        {
            var tenant = await tenants.FindAsync(c, null, idOrSlug);
            if (tenant is null)
            {
                return (false, (Quota?)null, 0m);
            }

            var plan = await PlanOfAsync(c, tenant, snapshot, now);
            var hard = plan?.Quotas.FirstOrDefault(q => q.Meter == meterKey && q.Kind == "hard");
            if (hard is null || !snapshot.Meters.TryGetValue(meterKey, out var meter))
            {
                return (true, null, 0m);
            }

            var used = await UsageReader.TotalAsync(c, meter, tenant.Id, period.Start, period.End);
            return (true, used + quantity > hard.Limit ? hard : null, used);
        }, cancellationToken);
    }

    /// <summary>
    /// Counts one API call of the tenant and says whether its hard api_calls quota is already used up.
    /// The month's count comes from the store once, then is kept in process.
    /// </summary>
    internal async Task<Quota?> CountApiCallAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var snapshot = await catalog.GetAsync(cancellationToken);
        var now = time.GetUtcNow();
        var period = BillingPeriod.Of(now);
        var plan = await CachedPlanAsync(tenantId, snapshot, now, cancellationToken);
        var hard = plan?.Quotas.FirstOrDefault(q => q.Meter == ApiCallMeter.MeterKey && q.Kind == "hard");
        if (hard is null)
        {
            return null; // Nothing to enforce: the request path stays free of queries.
        }

        var key = (tenantId, period.ToString());
        if (!_apiCalls.TryGetValue(key, out _))
        {
            var stored = await db.ReadAsync(async c =>
            {
                var tenant = await tenants.GetAsync(c, null, tenantId);
                var meter = snapshot.Meters.GetValueOrDefault(ApiCallMeter.MeterKey);
                return tenant is null || meter is null ? 0 : (long)await UsageReader.TotalAsync(c, meter, tenantId, period.Start, period.End);
            }, cancellationToken);
            _apiCalls.TryAdd(key, stored);
        }

        var count = _apiCalls.AddOrUpdate(key, 1, (_, n) => n + 1);
        return count > hard.Limit ? hard : null;
    }

    /// <summary>
    /// The most bytes the tenant may store: the lowest hard <c>storage_bytes</c> quota of its plan,
    /// or null when it has none. Served from the cached plan, so writes ask it freely.
    /// </summary>
    public async Task<long?> StorageLimitAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        var snapshot = await catalog.GetAsync(cancellationToken);
        var plan = await CachedPlanAsync(tenantId, snapshot, time.GetUtcNow(), cancellationToken);
        long? limit = null;
        foreach (var quota in plan?.Quotas ?? [])
        {
            if (quota.Meter == StorageMeterKey && quota.Kind == "hard")
            {
                var bytes = quota.Limit >= long.MaxValue ? long.MaxValue : (long)decimal.Floor(quota.Limit);
                limit = limit is { } l ? Math.Min(l, bytes) : bytes;
            }
        }

        return limit;
    }

    /// <summary>The tenant's plan now, cached as long as the catalog snapshot it came from.</summary>
    private async Task<Plan?> CachedPlanAsync(Guid tenantId, BillingCatalog.Snapshot snapshot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_plans.TryGetValue(tenantId, out var cached) && ReferenceEquals(cached.Snapshot, snapshot))
        {
            return cached.Plan;
        }

        var plan = await db.ReadAsync(async c => await tenants.GetAsync(c, null, tenantId) is { } t ? await PlanOfAsync(c, t, snapshot, now) : null, cancellationToken);
        if (_plans.Count < 100_000)
        {
            _plans[tenantId] = (snapshot, plan);
        }

        return plan;
    }

    internal static async Task<Plan?> PlanOfAsync(DbConnection c, BilledTenant tenant, BillingCatalog.Snapshot snapshot, DateTimeOffset at) =>
        snapshot.Plans.GetValueOrDefault(TenantPlans.PlanAt(tenant, await TenantPlans.ListAsync(c, null, tenant.Id), at));

    public static ApiError Exceeded(Quota quota, decimal used, int status, DateTimeOffset periodEnd) => new(
        status, QuotaExceeded, "The tenant's plan quota is used up.",
        string.Create(CultureInfo.InvariantCulture,
            $"The hard quota on {quota.Meter} is {quota.Limit} per month and {used} is used; it resets at {periodEnd:yyyy-MM-dd'T'HH:mm:ss'Z'}. Upgrade the plan for more."));
}

public static class EntitlementsApi
{
    public static RouteGroupBuilder MapEntitlementsApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/tenants/{id}/entitlements", async Task<Results<Ok<EntitlementsResponse>, ProblemHttpResult>> (string id, EntitlementService service) =>
                await service.ForTenantAsync(id) is { } found ? TypedResults.Ok(found) : ApiError.NotFound($"Tenant '{id}'").ToResult())
            .WithTags("Entitlements").WithSummary("The tenant's quotas with this month's usage, and its rate limits.");
        v1.MapPost("/tenants/{id}/entitlements/check", Check).WithTags("Entitlements").Accepts<EntitlementCheckRequest>("application/json")
            .WithSummary("May the tenant consume quantity more of meter? 200 when yes, 402 problem details when a hard quota says no.");
        return v1;
    }

    private static async Task<Results<Ok<JsonObject>, ProblemHttpResult>> Check(string id, HttpContext http, EntitlementService service, BillingCatalog catalog, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<EntitlementCheckRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (body!.Meter is null || !(await catalog.GetAsync()).Meters.ContainsKey(body.Meter))
        {
            return ApiError.Validation("meter", "meter names a meter (GET /v1/meters).").ToResult();
        }

        if (body.Quantity is not { } quantity || quantity < 0)
        {
            return ApiError.Validation("quantity", "quantity is a number >= 0.").ToResult();
        }

        var (found, blocking, used) = await service.CheckAsync(id, body.Meter, quantity, http.RequestAborted);
        if (!found)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        return blocking is not null
            ? EntitlementService.Exceeded(blocking, used, StatusCodes.Status402PaymentRequired, BillingPeriod.Of(time.GetUtcNow()).End).ToResult()
            : TypedResults.Ok(new JsonObject { ["allowed"] = true, ["meter"] = body.Meter, ["used"] = used });
    }
}
