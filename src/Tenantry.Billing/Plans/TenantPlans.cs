using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Plans;

/// <summary>A tenant's plan from a moment on (until the next assignment).</summary>
public sealed record PlanAssignment(string Id, Guid TenantId, string PlanId, DateTimeOffset EffectiveFrom, string Actor, DateTimeOffset CreatedAt);

/// <summary>A stretch of a billing period during which one plan was in effect.</summary>
public sealed record PlanSegment(Plan Plan, DateTimeOffset From, DateTimeOffset To);

/// <summary>Which plan a tenant is on when. Without an assignment a tenant is on its tier's plan from creation.</summary>
internal static class TenantPlans
{
    public static Task<List<PlanAssignment>> ListAsync(DbConnection c, DbTransaction? tx, Guid tenantId) => c.QueryAsync(
        "SELECT id, tenant_id, plan_id, effective_from, actor, created_at FROM tenant_plans WHERE tenant_id = @tenant ORDER BY effective_from",
        tx,
        r => new PlanAssignment(r.GetString(0), r.ReadGuid(1), r.GetString(2), r.ReadTime(3), r.GetString(4), r.ReadTime(5)),
        ("@tenant", tenantId));

    /// <summary>Every tenant's plan changes in one read, each tenant's in effective order.</summary>
    public static async Task<Dictionary<Guid, List<PlanAssignment>>> ListAllAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync(
            "SELECT id, tenant_id, plan_id, effective_from, actor, created_at FROM tenant_plans ORDER BY tenant_id, effective_from",
            tx,
            r => new PlanAssignment(r.GetString(0), r.ReadGuid(1), r.GetString(2), r.ReadTime(3), r.GetString(4), r.ReadTime(5))))
        .GroupBy(a => a.TenantId)
        .ToDictionary(g => g.Key, g => g.OrderBy(a => a.EffectiveFrom).ToList());

    public static async Task<PlanAssignment?> GetAsync(DbConnection c, DbTransaction? tx, string id) => (await c.QueryAsync(
        "SELECT id, tenant_id, plan_id, effective_from, actor, created_at FROM tenant_plans WHERE id = @id",
        tx,
        r => new PlanAssignment(r.GetString(0), r.ReadGuid(1), r.GetString(2), r.ReadTime(3), r.GetString(4), r.ReadTime(5)),
        ("@id", id))).SingleOrDefault();

    /// <summary>Each tenant with a plan change in effect at <paramref name="at"/>, and that plan (tenants without one are on their tier's plan).</summary>
    /// <remarks>Times are stored in one fixed-width UTC format, so they compare as text; the unique (tenant, time) index serves the lookup.</remarks>
    public static async Task<Dictionary<Guid, string>> InEffectAsync(DbConnection c, DateTimeOffset at) =>
        (await c.QueryAsync(
            """
            SELECT p.tenant_id, p.plan_id FROM tenant_plans p
            WHERE p.effective_from = (SELECT MAX(q.effective_from) FROM tenant_plans q WHERE q.tenant_id = p.tenant_id AND q.effective_from <= @at)
            """,
            null,
            r => (Tenant: r.ReadGuid(0), Plan: r.GetString(1)),
            ("@at", at))).ToDictionary(r => r.Tenant, r => r.Plan);

    public static Task InsertAsync(DbConnection c, DbTransaction tx, PlanAssignment a) => c.ExecuteAsync(
        "INSERT INTO tenant_plans (id, tenant_id, plan_id, effective_from, actor, created_at) VALUES (@id, @tenant, @plan, @from, @actor, @now)",
        tx, ("@id", a.Id), ("@tenant", a.TenantId), ("@plan", a.PlanId), ("@from", a.EffectiveFrom), ("@actor", a.Actor), ("@now", a.CreatedAt));

    /// <summary>
    /// The same change asked again gets the same id: from the Idempotency-Key when there is one,
    /// else from what it changes. So a retried change is stored, and billed, once.
    /// </summary>
    public static string ChangeId(Guid tenantId, string? idempotencyKey, string planId, DateTimeOffset effectiveFrom)
    {
        var basis = idempotencyKey is null ? $"{tenantId}|{planId}|{Sql.Time(effectiveFrom)}" : $"{tenantId}|key|{idempotencyKey}";
        return "pc_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(basis)))[..32];
    }

    /// <summary>The plans in effect during <paramref name="period"/>, in order; empty when the tenant did not exist then.</summary>
    public static List<PlanSegment> Segments(BilledTenant tenant, IReadOnlyList<PlanAssignment> assignments, IReadOnlyDictionary<string, Plan> plans, BillingPeriod period)
    {
        var timeline = new List<(DateTimeOffset From, string PlanId)> { (tenant.CreatedAt, tenant.Tier) };
        timeline.AddRange(assignments.OrderBy(a => a.EffectiveFrom).Select(a => (a.EffectiveFrom < tenant.CreatedAt ? tenant.CreatedAt : a.EffectiveFrom, a.PlanId)));
        var lifeEnd = tenant.Status == TenantStatus.Offboarded ? tenant.UpdatedAt : DateTimeOffset.MaxValue;
        var segments = new List<PlanSegment>();
        for (var i = 0; i < timeline.Count; i++)
        {
            var from = Max(timeline[i].From, period.Start);
            var to = Min(i + 1 < timeline.Count ? timeline[i + 1].From : DateTimeOffset.MaxValue, Min(period.End, lifeEnd));
            if (to <= from || !plans.TryGetValue(timeline[i].PlanId, out var plan))
            {
                continue;
            }

            if (segments.Count > 0 && segments[^1].Plan.Id == plan.Id && segments[^1].To == from)
            {
                segments[^1] = segments[^1] with { To = to };
            }
            else
            {
                segments.Add(new PlanSegment(plan, from, to));
            }
        }

        return segments;
    }

    /// <summary>The plan in effect at <paramref name="at"/>.</summary>
    public static string PlanAt(BilledTenant tenant, IReadOnlyList<PlanAssignment> assignments, DateTimeOffset at) =>
        assignments.Where(a => a.EffectiveFrom <= at).OrderBy(a => a.EffectiveFrom).LastOrDefault()?.PlanId ?? tenant.Tier;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;
}
