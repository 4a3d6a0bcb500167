using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.Billing.Invoices;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Plans;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record PlanChangeRequest(string? PlanId, DateTimeOffset? EffectiveAt);

public sealed record TenantPlanResponse(string TenantId, string CurrentPlanId, IReadOnlyList<PlanAssignmentResponse> Schedule);

public sealed record PlanAssignmentResponse(string Id, string PlanId, DateTimeOffset EffectiveFrom, string Actor, DateTimeOffset CreatedAt);

public static class PlansApi
{
    public static RouteGroupBuilder MapPlansApi(this RouteGroupBuilder v1)
    {
        var plans = v1.MapGroup("/plans").WithTags("Plans");
        plans.MapGet("/", async (BillingCatalog catalog) => TypedResults.Ok((await catalog.ReloadAsync()).Plans.Values.ToList()))
            .WithSummary("The plan catalog.");
        plans.MapGet("/{id}", Get).WithSummary("A plan, with its ETag.");
        plans.MapPost("/", Create).Accepts<PlanRequest>("application/json").WithSummary("Add a plan to the catalog.");
        plans.MapPatch("/{id}", Patch).Accepts<PlanRequest>("application/json", "application/merge-patch+json")
            .WithSummary("Change a plan: the fields sent replace the stored ones. If-Match is honoured.");
        v1.MapGet("/tenants/{id}/plan", GetTenantPlan).WithTags("Plans").WithSummary("The tenant's current plan and its plan schedule.");
        v1.MapPost("/tenants/{id}/plan", ChangeTenantPlan).WithTags("Plans").Accepts<PlanChangeRequest>("application/json")
            .WithSummary("Move the tenant to another plan from effectiveAt (default now), prorated on its invoice. Idempotent: send an Idempotency-Key.");
        return v1;
    }

    private static async Task<Results<Ok<Plan>, ProblemHttpResult>> Get(string id, BillingCatalog catalog, HttpContext http)
    {
        if (!(await catalog.ReloadAsync()).Plans.TryGetValue(id, out var plan))
        {
            return ApiError.NotFound($"Plan '{id}'").ToResult();
        }

        http.Response.Headers.ETag = $"\"{plan.Version}\"";
        return TypedResults.Ok(plan);
    }

    private static async Task<Results<Created<Plan>, ProblemHttpResult>> Create(HttpContext http, IControlPlaneDatabase db, BillingCatalog catalog, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<PlanRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var snapshot = await catalog.GetAsync();
        var plan = new Plan
        {
            Id = body!.Id ?? "",
            Name = body.Name ?? body.Id ?? "",
            Tier = body.Tier ?? "",
            Isolation = body.Isolation ?? "",
            Currency = body.Currency ?? "USD",
            BasePrice = body.BasePrice ?? 0,
            Prices = body.Prices ?? [],
            Quotas = body.Quotas ?? [],
            RateLimits = body.RateLimits ?? [],
            Jobs = body.Jobs ?? JobLimits.Default,
            HeavyLifterShare = body.HeavyLifterShare ?? 0.5m,
            Archived = body.Archived ?? false,
        };
        if (Check(plan, snapshot) is { } problem)
        {
            return problem.ToResult();
        }

        var now = time.GetUtcNow();
        var created = await db.WriteAsync(async (c, tx) =>
        {
            var inserted = await PlanStore.InsertAsync(c, tx, plan, now);
            if (inserted)
            {
                await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, null, "plan.create", new JsonObject { ["planId"] = plan.Id }, now));
            }

            return inserted;
        });
        if (!created)
        {
            return ApiError.Conflict("plan-exists", "The plan exists.", $"A plan '{plan.Id}' exists; change it with PATCH.").ToResult();
        }

        await catalog.ReloadAsync();
        return TypedResults.Created($"/v1/plans/{plan.Id}", plan with { Version = 1 });
    }

    private static async Task<Results<Ok<Plan>, ProblemHttpResult>> Patch(string id, HttpContext http, IControlPlaneDatabase db, BillingCatalog catalog, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<PlanRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (body!.Id is not null && body.Id != id)
        {
            return ApiError.Validation("id", "A plan's id does not change.").ToResult();
        }

        var ifMatch = http.Request.Headers.IfMatch.ToString();
        var snapshot = await catalog.GetAsync();
        var now = time.GetUtcNow();
        var outcome = await db.WriteAsync<(Plan? Plan, ApiError? Error)>(async (c, tx) =>
        {
            var stored = await BillingCatalog.ReadPlanAsync(c, tx, id);
            if (stored is null)
            {
                return (null, ApiError.NotFound($"Plan '{id}'"));
            }

            if (ifMatch.Length > 0 && ifMatch != "*" && ifMatch != $"\"{stored.Version}\"")
            {
                return (null, new ApiError(StatusCodes.Status412PreconditionFailed, "precondition-failed", "The plan changed.",
                    $"If-Match {ifMatch} is not the current ETag \"{stored.Version}\"; read the plan again."));
            }

            var plan = stored with
            {
                Name = body.Name ?? stored.Name,
                Tier = body.Tier ?? stored.Tier,
                Isolation = body.Isolation ?? stored.Isolation,
                Currency = body.Currency ?? stored.Currency,
                BasePrice = body.BasePrice ?? stored.BasePrice,
                Prices = body.Prices ?? stored.Prices,
                Quotas = body.Quotas ?? stored.Quotas,
                RateLimits = body.RateLimits ?? stored.RateLimits,
                Jobs = body.Jobs ?? stored.Jobs,
                HeavyLifterShare = body.HeavyLifterShare ?? stored.HeavyLifterShare,
                Archived = body.Archived ?? stored.Archived,
                Version = stored.Version + 1,
            };
            if (Check(plan, snapshot) is { } problem)
            {
                return (null, problem);
            }

            await PlanStore.UpdateAsync(c, tx, plan, now);
            await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, null, "plan.update", new JsonObject { ["planId"] = id, ["version"] = plan.Version }, now));
            return (plan, null);
        });
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        await catalog.ReloadAsync();
        http.Response.Headers.ETag = $"\"{outcome.Plan!.Version}\"";
        return TypedResults.Ok(outcome.Plan);
    }

    private static ApiError? Check(Plan plan, BillingCatalog.Snapshot snapshot)
    {
        var errors = new Dictionary<string, string[]>();
        void Add(string field, string message) => errors[field] = [.. errors.GetValueOrDefault(field) ?? [], message];

        if (!TierNames.IsValid(plan.Id))
        {
            Add("id", "A plan id is 1-40 lowercase letters, digits or '-'.");
        }

        if (string.IsNullOrWhiteSpace(plan.Name) || plan.Name.Length > 200)
        {
            Add("name", "A name is 1-200 characters.");
        }

        if (!TierNames.IsValid(plan.Tier))
        {
            Add("tier", "tier is a tier name (lowercase letters, digits, '-').");
        }

        if (!WireNames.TryParseIsolation(plan.Isolation, out _))
        {
            Add("isolation", "isolation is pool, bridge or silo.");
        }

        if (plan.Currency.Length != 3 || !plan.Currency.All(char.IsAsciiLetterUpper))
        {
            Add("currency", "currency is an ISO 4217 code such as USD.");
        }

        if (plan.BasePrice < 0)
        {
            Add("basePrice", "basePrice cannot be negative.");
        }

        if (plan.HeavyLifterShare is < 0 or > 1)
        {
            Add("heavyLifterShare", "heavyLifterShare is a fraction between 0 and 1.");
        }

        for (var i = 0; i < plan.Prices.Count; i++)
        {
            var price = plan.Prices[i];
            if (price is null || !snapshot.Meters.ContainsKey(price.Meter ?? ""))
            {
                Add($"prices[{i}].meter", "meter names a meter (GET /v1/meters).");
            }
            else if (Pricing.Check(price) is { } why)
            {
                Add($"prices[{i}]", why);
            }
        }

        if (plan.Prices.Where(p => p is not null).GroupBy(p => p.Meter).Any(g => g.Count() > 1))
        {
            Add("prices", "One price per meter.");
        }

        for (var i = 0; i < plan.Quotas.Count; i++)
        {
            var quota = plan.Quotas[i];
            if (quota is null || !snapshot.Meters.ContainsKey(quota.Meter ?? "") || quota.Limit < 0 || quota.Kind is not ("hard" or "soft"))
            {
                Add($"quotas[{i}]", "A quota names a meter, a limit >= 0 and a kind: hard or soft.");
            }
        }

        for (var i = 0; i < plan.RateLimits.Count; i++)
        {
            var limit = plan.RateLimits[i];
            if (limit is null || string.IsNullOrWhiteSpace(limit.Name) || limit.PermitsPerSecond is < 1 or > 1_000_000
                || limit.Burst < limit.PermitsPerSecond || limit.Burst > 10_000_000 || limit.DailyQuota is < 0 or > int.MaxValue)
            {
                Add($"rateLimits[{i}]", "A rate limit has a name, permitsPerSecond 1-1000000, burst from permitsPerSecond to 10000000 and dailyQuota 0 (none) to 2147483647.");
            }
        }

        if (JobLimits.Check(plan.Jobs) is { } jobs)
        {
            Add("jobs", jobs);
        }

        return errors.Count == 0 ? null : ApiError.Validation(errors);
    }

    private static async Task<Results<Ok<TenantPlanResponse>, ProblemHttpResult>> GetTenantPlan(string id, IControlPlaneDatabase db, ITenantDirectory tenants, TimeProvider time)
    {
        var found = await db.ReadAsync(async c =>
        {
            var tenant = await tenants.FindAsync(c, null, id);
            return tenant is null ? default : (Tenant: tenant, Schedule: await TenantPlans.ListAsync(c, null, tenant.Id));
        });
        return found.Tenant is null
            ? ApiError.NotFound($"Tenant '{id}'").ToResult()
            : TypedResults.Ok(Response(found.Tenant, found.Schedule, time.GetUtcNow()));
    }

    private static TenantPlanResponse Response(BilledTenant tenant, List<PlanAssignment> schedule, DateTimeOffset now) => new(
        tenant.Id.ToString(), TenantPlans.PlanAt(tenant, schedule, now),
        [.. schedule.Select(a => new PlanAssignmentResponse(a.Id, a.PlanId, a.EffectiveFrom, a.Actor, a.CreatedAt))]);

    private static async Task<Results<Ok<TenantPlanResponse>, ProblemHttpResult>> ChangeTenantPlan(
        string id, HttpContext http, IControlPlaneDatabase db, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time, IOptions<BillingOptions> options)
    {
        var (body, error) = await JsonBody.ReadAsync<PlanChangeRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var key = http.Request.Headers[IdempotencyKey.Header].ToString();
        if (key.Length > 255 || key.Any(c => c is < ' ' or > '~'))
        {
            return ApiError.Validation(IdempotencyKey.Header, "An Idempotency-Key is 1-255 printable ASCII characters.").ToResult();
        }

        var snapshot = await catalog.ReloadAsync();
        if (body!.PlanId is null || !snapshot.Plans.TryGetValue(body.PlanId, out var plan))
        {
            return ApiError.Validation("planId", "planId names a plan (GET /v1/plans).").ToResult();
        }

        if (plan.Archived)
        {
            return ApiError.Conflict("plan-archived", "The plan is archived.", $"Plan '{plan.Id}' takes no new tenants.").ToResult();
        }

        var now = time.GetUtcNow();
        var effective = (body.EffectiveAt ?? now).ToUniversalTime();
        effective = new DateTimeOffset(effective.UtcTicks - (effective.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
        var openFrom = UsageApi.OpenFrom(now, options.Value.LateEventGrace);
        var outcome = await db.WriteAsync<(TenantPlanResponse? Value, ApiError? Error, bool Replayed)>(async (c, tx) =>
        {
            var tenant = await tenants.FindAsync(c, tx, id);
            if (tenant is null)
            {
                return (null, ApiError.NotFound($"Tenant '{id}'"), false);
            }

            var changeId = TenantPlans.ChangeId(tenant.Id, key.Length > 0 ? key : null, plan.Id, effective);
            if (await TenantPlans.GetAsync(c, tx, changeId) is { } earlier)
            {
                if (earlier.PlanId != plan.Id || earlier.EffectiveFrom != effective)
                {
                    return (null, new ApiError(StatusCodes.Status422UnprocessableEntity, "idempotency-key-reused",
                        "The Idempotency-Key was used for a different request.",
                        $"The key '{key}' was first sent for plan {earlier.PlanId} from {earlier.EffectiveFrom:O}."), false);
                }

                return (Response(tenant, await TenantPlans.ListAsync(c, tx, tenant.Id), now), null, true);
            }

            if (tenant.Status == TenantStatus.Offboarded)
            {
                return (null, ApiError.Conflict("tenant-offboarded", "The tenant is offboarded.", "An offboarded tenant has no plan to change."), false);
            }

            var closedFinalized = await InvoiceStore.AnyFinalizedFromAsync(c, tx, tenant.Id, BillingPeriod.Of(effective));
            // Whole seconds: a change "now" may round to just before a tenant created this very second.
            var born = new DateTimeOffset(tenant.CreatedAt.UtcTicks - (tenant.CreatedAt.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
            if (effective < openFrom || effective < born || closedFinalized)
            {
                return (null, ApiError.Conflict("period-closed", "The change would rewrite a closed billing period.",
                    $"effectiveAt must be on or after {(effective < born ? born : openFrom):O} and in a period without a finalized invoice."), false);
            }

            var schedule = await TenantPlans.ListAsync(c, tx, tenant.Id);
            if (schedule.Any(a => a.EffectiveFrom == effective))
            {
                return (null, ApiError.Conflict("plan-change-exists", "Another plan change starts at that moment.",
                    $"The tenant already changes plan at {effective:O}; pick another effectiveAt."), false);
            }

            var change = new PlanAssignment(changeId, tenant.Id, plan.Id, effective, http.User.Actor(), now);
            await TenantPlans.InsertAsync(c, tx, change);
            await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, tenant.Id, "tenant.plan.change", new JsonObject
            {
                ["planId"] = plan.Id,
                ["from"] = TenantPlans.PlanAt(tenant, schedule, effective),
                ["effectiveAt"] = effective.ToString("O", CultureInfo.InvariantCulture),
                ["changeId"] = changeId,
            }, now));
            schedule.Add(change);
            return (Response(tenant, [.. schedule.OrderBy(a => a.EffectiveFrom)], now), null, false);
        });
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        if (outcome.Replayed)
        {
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }

        await catalog.ReloadAsync(); // Cached plans of tenants (quota checks) follow the change at once.
        return TypedResults.Ok(outcome.Value!);
    }
}
