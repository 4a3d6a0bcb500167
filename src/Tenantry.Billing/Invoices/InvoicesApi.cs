using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Events;
using Tenantry.Billing.Plans;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Invoices;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateInvoiceRequest(string? Period);

public sealed record InvoiceResponse(
    string Id, string TenantId, string Period, string Status, string Currency, decimal Total, IReadOnlyList<InvoiceLine> Lines, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>Invoices per tenant and month: draft (recomputed on demand) → finalized (immutable) → void.</summary>
public static class InvoicesApi
{
    public const string Draft = "draft";
    public const string Finalized = "finalized";
    public const string Void = "void";

    public static RouteGroupBuilder MapInvoicesApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/tenants/{id}/invoices", List).WithTags("Invoices").WithSummary("The tenant's invoices, oldest period first.");
        v1.MapPost("/tenants/{id}/invoices", CreateDraft).WithTags("Invoices").Accepts<CreateInvoiceRequest>("application/json")
            .WithSummary("Compute the tenant's draft invoice for a period (YYYY-MM) from stored usage; recomputes an existing draft.");
        v1.MapGet("/tenants/{id}/invoices/preview", Preview).WithTags("Invoices")
            .WithSummary("What the tenant's invoice for ?period=YYYY-MM comes to now, computed from stored events; nothing is stored.");
        v1.MapGet("/invoices/{invoiceId}", Get).WithTags("Invoices").WithSummary("An invoice as JSON, or as CSV with ?format=csv.");
        v1.MapPost("/invoices/{invoiceId}/finalize", (string invoiceId, HttpContext http, IControlPlaneDatabase db, IEventOutbox events, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time) =>
            Transition(invoiceId, Finalized, http, db, events, tenants, catalog, time)).WithTags("Invoices")
            .WithSummary("Recompute a draft a last time and freeze it; its period then takes no more usage events for the tenant.");
        v1.MapPost("/invoices/{invoiceId}/void", (string invoiceId, HttpContext http, IControlPlaneDatabase db, IEventOutbox events, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time) =>
            Transition(invoiceId, Void, http, db, events, tenants, catalog, time)).WithTags("Invoices")
            .WithSummary("Void a draft or finalized invoice (it stays, marked void).");
        return v1;
    }

    private static async Task<Results<Ok<Page<InvoiceResponse>>, ProblemHttpResult>> List(string id, IControlPlaneDatabase db, ITenantDirectory tenants)
    {
        var rows = await db.ReadAsync<List<InvoiceResponse>?>(async c =>
        {
            var tenant = await tenants.FindAsync(c, null, id);
            return tenant is null ? null : await InvoiceStore.ListByTenantAsync(c, null, tenant.Id);
        });
        return rows is null ? ApiError.NotFound($"Tenant '{id}'").ToResult() : TypedResults.Ok(new Page<InvoiceResponse>(rows, null));
    }

    private static async Task<Results<Ok<InvoiceDocument>, ProblemHttpResult>> Preview(string id, string? period, IControlPlaneDatabase db, ITenantDirectory tenants, BillingCatalog catalog)
    {
        if (!BillingPeriod.TryParse(period, out var p))
        {
            return ApiError.Validation("period", "period is a month: YYYY-MM.").ToResult();
        }

        var snapshot = await catalog.ReloadAsync();
        var document = await db.ReadAsync(async c =>
            await tenants.FindAsync(c, null, id) is { } tenant ? await InvoiceCalculator.ComputeAsync(c, null, tenant, p, snapshot) : null);
        return document is null ? ApiError.NotFound($"Tenant '{id}'").ToResult() : TypedResults.Ok(document);
    }

    private static async Task<Results<Created<InvoiceResponse>, Ok<InvoiceResponse>, ProblemHttpResult>> CreateDraft(
        string id, HttpContext http, IControlPlaneDatabase db, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateInvoiceRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (!BillingPeriod.TryParse(body!.Period, out var period))
        {
            return ApiError.Validation("period", "period is a month: YYYY-MM.").ToResult();
        }

        var now = time.GetUtcNow();
        if (period.Start > now)
        {
            return ApiError.Validation("period", "The period has not begun.").ToResult();
        }

        var snapshot = await catalog.ReloadAsync();
        var outcome = await db.WriteAsync<(InvoiceResponse? Value, ApiError? Error, bool Created)>(async (c, tx) =>
        {
            var tenant = await tenants.FindAsync(c, tx, id);
            if (tenant is null)
            {
                return (null, ApiError.NotFound($"Tenant '{id}'"), false);
            }

            var existing = await InvoiceStore.FindOpenAsync(c, tx, tenant.Id, period);
            if (existing is { Status: Finalized })
            {
                return (null, ApiError.Conflict("invoice-finalized", "The period's invoice is finalized.",
                    $"Invoice {existing.Id} for {period} is finalized and immutable; void it first to issue another."), false);
            }

            var document = await InvoiceCalculator.ComputeAsync(c, tx, tenant, period, snapshot);
            if (existing is not null)
            {
                await InvoiceStore.UpdateDraftAsync(c, tx, existing.Id, document, now);
                return (Response(existing.Id, Draft, document, existing.CreatedAt, now), null, false);
            }

            var invoiceId = "inv_" + Guid.NewGuid().ToString("N");
            await InvoiceStore.InsertDraftAsync(c, tx, invoiceId, tenant.Id, period, document, now);
            return (Response(invoiceId, Draft, document, now, now), null, true);
        });
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        return outcome.Created ? TypedResults.Created($"/v1/invoices/{outcome.Value!.Id}", outcome.Value) : TypedResults.Ok(outcome.Value!);
    }

    private static async Task<IResult> Get(string invoiceId, string? format, IControlPlaneDatabase db)
    {
        if (format is not (null or "json" or "csv"))
        {
            return ApiError.Validation("format", "format is json or csv.").ToResult();
        }

        var invoice = await db.ReadAsync(c => InvoiceStore.GetAsync(c, null, invoiceId));
        if (invoice is null)
        {
            return ApiError.NotFound($"Invoice '{invoiceId}'").ToResult();
        }

        return format == "csv"
            ? TypedResults.Text(Csv(invoice), "text/csv; charset=utf-8", Encoding.UTF8)
            : TypedResults.Ok(invoice);
    }

    private static async Task<Results<Ok<InvoiceResponse>, ProblemHttpResult>> Transition(
        string invoiceId, string target, HttpContext http, IControlPlaneDatabase db, IEventOutbox events, ITenantDirectory tenants, BillingCatalog catalog, TimeProvider time)
    {
        var now = time.GetUtcNow();
        var snapshot = await catalog.ReloadAsync();
        var outcome = await db.WriteAsync<(InvoiceResponse? Value, ApiError? Error)>(async (c, tx) =>
        {
            var invoice = await InvoiceStore.GetAsync(c, tx, invoiceId);
            if (invoice is null)
            {
                return (null, ApiError.NotFound($"Invoice '{invoiceId}'"));
            }

            if (invoice.Status == target)
            {
                return (invoice, null); // Finalizing or voiding twice is a no-op.
            }

            if (invoice.Status == Void || (target == Finalized && invoice.Status != Draft))
            {
                return (null, ApiError.Conflict("invoice-state", "The invoice cannot make that change.",
                    $"Invoice {invoice.Id} is {invoice.Status}; drafts are finalized, drafts and finalized invoices are voided."));
            }

            var response = invoice with { Status = target, UpdatedAt = now };
            if (target == Finalized)
            {
                var tenant = (await tenants.GetAsync(c, tx, Guid.Parse(invoice.TenantId)))!;
                var period = BillingPeriod.TryParse(invoice.Period, out var parsed) ? parsed : throw new InvalidOperationException($"Invoice {invoice.Id} has no period.");
                var document = await InvoiceCalculator.ComputeAsync(c, tx, tenant, period, snapshot);
                response = Response(invoice.Id, Finalized, document, invoice.CreatedAt, now);
                await InvoiceStore.FinalizeAsync(c, tx, invoice.Id, document, now);
                await events.AppendAsync(c, tx, new OutboxEvent(EventTypes.InvoiceFinalized, tenant.Id, new JsonObject
                {
                    ["invoiceId"] = invoice.Id,
                    ["tenantId"] = tenant.Id.ToString(),
                    ["period"] = invoice.Period,
                    ["currency"] = document.Currency,
                    ["total"] = document.Total,
                }), now);
            }
            else
            {
                await InvoiceStore.VoidAsync(c, tx, invoice.Id, now);
            }

            await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, Guid.Parse(invoice.TenantId), "invoice." + (target == Finalized ? "finalize" : "void"),
                new JsonObject { ["invoiceId"] = invoice.Id, ["period"] = invoice.Period, ["total"] = Invariant(response.Total) }, now));
            return (response, null);
        });
        return outcome.Error is not null ? outcome.Error.ToResult() : TypedResults.Ok(outcome.Value!);
    }

    internal static InvoiceResponse Response(string id, string status, InvoiceDocument d, DateTimeOffset created, DateTimeOffset updated) =>
        new(id, d.TenantId, d.Period, status, d.Currency, d.Total, d.Lines, created, updated);

    internal static string Invariant(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>One row per line, then a total row; RFC 4180 quoting.</summary>
    public static string Csv(InvoiceResponse invoice)
    {
        ArgumentNullException.ThrowIfNull(invoice);
        var csv = new StringBuilder("invoice_id,tenant_id,period,status,currency,kind,plan_id,meter,description,quantity,included,billable,amount,from,to\r\n");
        foreach (var l in invoice.Lines)
        {
            Row(csv, invoice, l.Kind, l.PlanId, l.Meter, l.Description, Invariant(l.Quantity), Invariant(l.Included), Invariant(l.Billable), Invariant(l.Amount),
                l.From.ToString("O", CultureInfo.InvariantCulture), l.To.ToString("O", CultureInfo.InvariantCulture));
        }

        Row(csv, invoice, "total", "", "", "Total", "", "", "", Invariant(invoice.Total), "", "");
        return csv.ToString();
    }

    private static void Row(StringBuilder csv, InvoiceResponse i, params string?[] fields)
    {
        string?[] all = [i.Id, i.TenantId, i.Period, i.Status, i.Currency, .. fields];
        csv.AppendJoin(',', all.Select(Quote)).Append("\r\n");
    }

    private static string Quote(string? field) =>
        field is null ? "" : field.IndexOfAny([',', '"', '\r', '\n']) >= 0 ? "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : field;
}
