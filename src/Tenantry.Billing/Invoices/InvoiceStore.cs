using System.Data.Common;
using System.Text.Json;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Invoices;

/// <summary>The invoices table. Callers own the transaction.</summary>
internal static class InvoiceStore
{
    public static Task<List<InvoiceResponse>> ListByTenantAsync(DbConnection c, DbTransaction? tx, Guid tenantId) =>
        ReadAsync(c, tx, "tenant_id = @tenant ORDER BY period, created_at", ("@tenant", tenantId));

    /// <summary>The period's draft or finalized invoice (void ones are history).</summary>
    public static async Task<InvoiceResponse?> FindOpenAsync(DbConnection c, DbTransaction? tx, Guid tenantId, BillingPeriod period) =>
        (await ReadAsync(c, tx, "tenant_id = @tenant AND period = @period AND status <> 'void'", ("@tenant", tenantId), ("@period", period.ToString())))
        .SingleOrDefault();

    public static async Task<InvoiceResponse?> GetAsync(DbConnection c, DbTransaction? tx, string invoiceId) =>
        (await ReadAsync(c, tx, "id = @id", ("@id", invoiceId))).SingleOrDefault();

    public static Task<List<InvoiceResponse>> FinalizedAsync(DbConnection c, DbTransaction? tx, BillingPeriod period) =>
        ReadAsync(c, tx, "period = @period AND status = 'finalized'", ("@period", period.ToString()));

    /// <summary>True when the tenant has a finalized invoice for <paramref name="period"/> or later.</summary>
    public static async Task<bool> AnyFinalizedFromAsync(DbConnection c, DbTransaction? tx, Guid tenantId, BillingPeriod period) =>
        await c.ScalarAsync(
            "SELECT 1 FROM invoices WHERE tenant_id = @tenant AND status = 'finalized' AND period >= @period", tx,
            ("@tenant", tenantId), ("@period", period.ToString())) is not null;

    public static Task InsertDraftAsync(DbConnection c, DbTransaction tx, string invoiceId, Guid tenantId, BillingPeriod period, InvoiceDocument document, DateTimeOffset now) =>
        c.ExecuteAsync(
            "INSERT INTO invoices (id, tenant_id, period, status, total, document, created_at, updated_at) VALUES (@id, @tenant, @period, 'draft', @total, @doc, @now, @now)",
            tx, ("@id", invoiceId), ("@tenant", tenantId), ("@period", period.ToString()), ("@total", InvoicesApi.Invariant(document.Total)),
            ("@doc", JsonSerializer.Serialize(document, BillingCatalog.Json)), ("@now", now));

    public static Task UpdateDraftAsync(DbConnection c, DbTransaction tx, string invoiceId, InvoiceDocument document, DateTimeOffset now) =>
        c.ExecuteAsync("UPDATE invoices SET total = @total, document = @doc, updated_at = @now WHERE id = @id", tx,
            ("@id", invoiceId), ("@total", InvoicesApi.Invariant(document.Total)), ("@doc", JsonSerializer.Serialize(document, BillingCatalog.Json)), ("@now", now));

    public static Task FinalizeAsync(DbConnection c, DbTransaction tx, string invoiceId, InvoiceDocument document, DateTimeOffset now) =>
        c.ExecuteAsync("UPDATE invoices SET status = 'finalized', total = @total, document = @doc, updated_at = @now WHERE id = @id", tx,
            ("@id", invoiceId), ("@total", InvoicesApi.Invariant(document.Total)), ("@doc", JsonSerializer.Serialize(document, BillingCatalog.Json)), ("@now", now));

    public static Task VoidAsync(DbConnection c, DbTransaction tx, string invoiceId, DateTimeOffset now) =>
        c.ExecuteAsync("UPDATE invoices SET status = 'void', updated_at = @now WHERE id = @id", tx, ("@id", invoiceId), ("@now", now));

    private static async Task<List<InvoiceResponse>> ReadAsync(DbConnection c, DbTransaction? tx, string where, params (string, object?)[] parameters) =>
        (await c.QueryAsync(
            "SELECT id, status, document, created_at, updated_at FROM invoices WHERE " + where, tx,
            r => (Id: r.GetString(0), Status: r.GetString(1), Doc: r.GetString(2), Created: r.ReadTime(3), Updated: r.ReadTime(4)), parameters))
        .Select(row => InvoicesApi.Response(row.Id, row.Status, JsonSerializer.Deserialize<InvoiceDocument>(row.Doc, BillingCatalog.Json)!, row.Created, row.Updated))
        .ToList();
}
