using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Costs;

/// <summary>The cost_lines table. Callers own the transaction.</summary>
internal static class CostStore
{
    public static async Task<CostLine?> GetAsync(DbConnection c, DbTransaction? tx, string id) =>
        (await ReadAsync(c, tx, "id = @id", ("@id", id))).SingleOrDefault();

    /// <summary>The period's lines, in the order they were recorded unless <paramref name="ordered"/> is false.</summary>
    public static Task<List<CostLine>> ListAsync(DbConnection c, DbTransaction? tx, BillingPeriod period, bool ordered = true) =>
        ReadAsync(c, tx, ordered ? "period = @period ORDER BY created_at, id" : "period = @period", ("@period", period.ToString()));

    public static Task InsertAsync(DbConnection c, DbTransaction tx, CostLine line) => c.ExecuteAsync(
        "INSERT INTO cost_lines (id, resource, amount, period, tenant_id, tags, created_at) VALUES (@id, @resource, @amount, @period, @tenant, @tags, @now)",
        tx, ("@id", line.Id), ("@resource", line.Resource), ("@amount", line.Amount.ToString(CultureInfo.InvariantCulture)), ("@period", line.Period),
        ("@tenant", line.TenantId), ("@tags", JsonSerializer.Serialize(line.Tags, BillingCatalog.Json)), ("@now", line.CreatedAt));

    /// <summary>Writes a line under its deterministic id, replacing the amount and tags of an earlier run of the same day (its creation time stays).</summary>
    public static Task UpsertAsync(DbConnection c, DbTransaction tx, CostLine line) => c.ExecuteAsync(
        """
        INSERT INTO cost_lines (id, resource, amount, period, tenant_id, tags, created_at) VALUES (@id, @resource, @amount, @period, @tenant, @tags, @now)
        ON CONFLICT (id) DO UPDATE SET resource = excluded.resource, amount = excluded.amount, period = excluded.period, tenant_id = excluded.tenant_id, tags = excluded.tags
        """,
        tx, ("@id", line.Id), ("@resource", line.Resource), ("@amount", line.Amount.ToString(CultureInfo.InvariantCulture)), ("@period", line.Period),
        ("@tenant", line.TenantId), ("@tags", JsonSerializer.Serialize(line.Tags, BillingCatalog.Json)), ("@now", line.CreatedAt));

    public static Task DeleteAsync(DbConnection c, DbTransaction tx, string id) =>
        c.ExecuteAsync("DELETE FROM cost_lines WHERE id = @id", tx, ("@id", id));

    /// <summary>The ids of the price-book lines of <paramref name="day"/> (their ids start with its prefix).</summary>
    public static Task<List<string>> DayLineIdsAsync(DbConnection c, DbTransaction? tx, string prefix) =>
        c.QueryAsync("SELECT id FROM cost_lines WHERE id >= @from AND id < @to", tx, r => r.GetString(0), ("@from", prefix), ("@to", prefix + "~"));

    public static Task RecordRunAsync(DbConnection c, DbTransaction tx, string day, int lines, decimal total, DateTimeOffset now) => c.ExecuteAsync(
        """
        INSERT INTO cost_runs (day, lines, total, ran_at) VALUES (@day, @lines, @total, @now)
        ON CONFLICT (day) DO UPDATE SET lines = excluded.lines, total = excluded.total, ran_at = excluded.ran_at
        """,
        tx, ("@day", day), ("@lines", lines), ("@total", total.ToString(CultureInfo.InvariantCulture)), ("@now", now));

    /// <summary>The latest day the price book was applied to, or null before the first run.</summary>
    public static async Task<string?> LastRunDayAsync(DbConnection c) =>
        (await c.QueryAsync("SELECT MAX(day) FROM cost_runs", null, r => r.IsDBNull(0) ? null : r.GetString(0))).FirstOrDefault();

    private static Task<List<CostLine>> ReadAsync(DbConnection c, DbTransaction? tx, string where, params (string, object?)[] parameters) =>
        c.QueryAsync(
            "SELECT id, resource, amount, period, tenant_id, tags, created_at FROM cost_lines WHERE " + where, tx,
            r => new CostLine(
                r.GetString(0), r.GetString(1), decimal.Parse(r.GetString(2), CultureInfo.InvariantCulture), r.GetString(3), r.ReadStringOrNull(4),
                r.IsDBNull(4), JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(5), BillingCatalog.Json)!, r.ReadTime(6)),
            parameters);
}
