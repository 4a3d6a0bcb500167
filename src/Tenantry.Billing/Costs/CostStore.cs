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

    private static Task<List<CostLine>> ReadAsync(DbConnection c, DbTransaction? tx, string where, params (string, object?)[] parameters) =>
        c.QueryAsync(
            "SELECT id, resource, amount, period, tenant_id, tags, created_at FROM cost_lines WHERE " + where, tx,
            r => new CostLine(
                r.GetString(0), r.GetString(1), decimal.Parse(r.GetString(2), CultureInfo.InvariantCulture), r.GetString(3), r.ReadStringOrNull(4),
                r.IsDBNull(4), JsonSerializer.Deserialize<Dictionary<string, string>>(r.GetString(5), BillingCatalog.Json)!, r.ReadTime(6)),
            parameters);
}
