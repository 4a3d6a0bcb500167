using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tenantry.Cli;

/// <summary><c>tenantry plans</c>, <c>invoices</c> and <c>costs</c>: the operator's money.</summary>
internal static partial class TenantryCli
{
    // ---- plans --------------------------------------------------------------------------------

    private static Command PlansCommand()
    {
        var plans = new Command("plans", "The plan catalog: list, show, create and change plans (prices, quotas, rate limits).");

        var list = new Command("list", "Every plan with its tier, isolation and base price.");
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync("/v1/plans", ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "NAME", "TIER", "ISOLATION", "BASE", "CURRENCY", "PRICES", "ARCHIVED"], result.EnumerateArray().Select(p => (IReadOnlyList<string>)
                [p.Str("id"), p.Str("name"), p.Str("tier"), p.Str("isolation"), p.Str("basePrice"), p.Str("currency"),
                 p.TryGetProperty("prices", out var prices) ? string.Join(", ", prices.EnumerateArray().Select(m => $"{m.Str("meter")}:{m.Str("model")}")) : "",
                 p.Str("archived")]));
            return ExitCodes.Ok;
        }));
        plans.Subcommands.Add(list);

        var getId = new Argument<string>("plan") { Description = "plan id" };
        var get = ShowCommand("get", "One plan: prices, quotas, rate limits, job limits.", getId, "/v1/plans");
        plans.Subcommands.Add(get);

        plans.Subcommands.Add(PlanWrite("create", "Add a plan: a JSON file (--file) and/or the flags below (flags win). Needs id, name, tier, isolation.", create: true));
        plans.Subcommands.Add(PlanWrite("update", "Change a plan: the fields given replace the stored ones; --if-match refuses the change if the plan changed since that ETag (exit 5).", create: false));
        return plans;
    }

    private static Command PlanWrite(string verb, string description, bool create)
    {
        var file = new Option<FileInfo?>("--file", "-f") { Description = "plan JSON ({id, name, tier, isolation, currency, basePrice, prices[], quotas[], rateLimits[], jobs, heavyLifterShare}); '-' for standard input" };
        var name = new Option<string?>("--name") { Description = "display name" };
        var tier = new Option<string?>("--tier") { Description = "tier the plan belongs to (basic, standard, premium, …)" };
        var isolation = new Option<string?>("--isolation") { Description = "pool, bridge or silo" };
        var currency = new Option<string?>("--currency") { Description = "ISO 4217 code, e.g. USD" };
        var basePrice = new Option<decimal?>("--base-price") { Description = "monthly base price" };
        var heavy = new Option<decimal?>("--heavy-lifter-share") { Description = "cost share (0-1) above which a tenant is a heavy lifter" };
        var archived = new Option<bool?>("--archived") { Description = "archive (true) or restore (false) the plan" };
        var ifMatch = new Option<string?>("--if-match") { Description = "ETag the plan must still have (update only)" };
        var id = new Argument<string>("plan") { Description = "plan id" };
        var command = new Command(verb, description) { id, file, name, tier, isolation, currency, basePrice, heavy, archived };
        if (!create)
        {
            command.Options.Add(ifMatch);
        }

        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var body = parse.GetValue(file) is { } f ? JsonNode.Parse((await ReadJsonAsync(f, ct)).GetRawText()) as JsonObject
                ?? throw new CliException(ExitCodes.Usage, "The plan file is not a JSON object.") : [];
            void Set(string key, JsonNode? value)
            {
                if (value is not null)
                {
                    body[key] = value;
                }
            }

            Set("id", create ? parse.GetValue(id) : null);
            Set("name", parse.GetValue(name));
            Set("tier", parse.GetValue(tier));
            Set("isolation", parse.GetValue(isolation));
            Set("currency", parse.GetValue(currency));
            Set("basePrice", parse.GetValue(basePrice));
            Set("heavyLifterShare", parse.GetValue(heavy));
            Set("archived", parse.GetValue(archived));
            if (!create)
            {
                body.Remove("id");
            }

            var headers = !create && parse.GetValue(ifMatch) is { } etag ? new Dictionary<string, string> { ["If-Match"] = etag.StartsWith('"') ? etag : $"\"{etag}\"" } : null;
            var plan = create
                ? await api.SendAsync(HttpMethod.Post, "/v1/plans", body, null, ct)
                : await api.SendAsync(HttpMethod.Patch, "/v1/plans/" + Escape(parse.GetValue(id)!), body, headers, ct);
            if (ctx.IsJson)
            {
                ctx.Json(plan);
            }
            else
            {
                ctx.Out.WriteLine($"Plan {plan.Str("id")} {(create ? "created" : "updated")}: {plan.Str("tier")}/{plan.Str("isolation")}, base {plan.Str("basePrice")} {plan.Str("currency")}.");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    // ---- invoices -----------------------------------------------------------------------------

    private static Command InvoicesCommand()
    {
        var invoices = new Command("invoices", "A tenant's invoices: list them, preview a month, finalize a month.");

        var listTenant = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var list = new Command("list", "The tenant's invoices, oldest period first.") { listTenant };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync($"/v1/tenants/{Escape(parse.GetValue(listTenant)!)}/invoices", ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "PERIOD", "STATUS", "TOTAL", "CURRENCY", "UPDATED"], Items(result).Select(i => (IReadOnlyList<string>)
                [i.Str("id"), i.Str("period"), i.Str("status"), i.Str("total"), i.Str("currency"), Output.Time(i.Str("updatedAt"))]));
            return ExitCodes.Ok;
        }));
        invoices.Subcommands.Add(list);

        var previewTenant = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var previewPeriod = new Option<string?>("--period") { Description = "month, YYYY-MM (default: this month, UTC)" };
        var preview = new Command("preview", "What the tenant's invoice for a month comes to now, from the stored usage; nothing is stored.") { previewTenant, previewPeriod };
        preview.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync($"/v1/tenants/{Escape(parse.GetValue(previewTenant)!)}/invoices/preview" + Query(("period", parse.GetValue(previewPeriod) ?? ThisMonth())), ct);
            PrintInvoice(ctx, result);
            return ExitCodes.Ok;
        }));
        invoices.Subcommands.Add(preview);

        var finalizeTenant = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var finalizePeriod = new Option<string>("--period") { Description = "month, YYYY-MM", Required = true };
        var finalize = new Command("finalize", "Compute the tenant's invoice for a month and finalize it (immutable; closes the month for the tenant's usage).") { finalizeTenant, finalizePeriod };
        finalize.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var tenant = Escape(parse.GetValue(finalizeTenant)!);
            var period = parse.GetValue(finalizePeriod)!;
            var existing = Items(await api.GetAsync($"/v1/tenants/{tenant}/invoices", ct))
                .FirstOrDefault(i => i.Str("period") == period && i.Str("status") is "draft" or "finalized");
            if (existing.ValueKind == JsonValueKind.Undefined || existing.Str("status") == "draft")
            {
                // A draft is (re)computed from the stored usage first, so the finalized invoice is current.
                existing = await api.SendAsync(HttpMethod.Post, $"/v1/tenants/{tenant}/invoices", new { period }, null, ct);
            }

            var invoice = existing.Str("status") == "finalized"
                ? existing
                : await api.SendAsync(HttpMethod.Post, $"/v1/invoices/{Escape(existing.Str("id"))}/finalize", null, null, ct);
            PrintInvoice(ctx, invoice);
            return ExitCodes.Ok;
        }));
        invoices.Subcommands.Add(finalize);
        return invoices;
    }

    private static void PrintInvoice(Output ctx, JsonElement invoice)
    {
        if (ctx.IsJson)
        {
            ctx.Json(invoice);
            return;
        }

        var id = invoice.Str("id");
        ctx.Out.WriteLine($"{(id.Length > 0 ? id + " " : "")}{invoice.Str("period")} {invoice.Str("status")}".Trim());
        if (invoice.TryGetProperty("lines", out var lines) && lines.ValueKind == JsonValueKind.Array)
        {
            ctx.Table(["KIND", "DESCRIPTION", "PLAN", "METER", "QUANTITY", "AMOUNT"], lines.EnumerateArray().Select(l => (IReadOnlyList<string>)
                [l.Str("kind"), l.Str("description"), l.Str("planId"), l.Str("meter"), l.Str("quantity"), l.Str("amount")]));
        }

        ctx.Out.WriteLine($"Total: {invoice.Str("total")} {invoice.Str("currency")}");
    }

    // ---- costs --------------------------------------------------------------------------------

    private static Command CostsCommand()
    {
        var period = new Option<string?>("--period") { Description = "month, YYYY-MM (default: this month, UTC)" };
        var meter = new Option<string?>("--meter") { Description = "meter that splits the shared costs (default api_calls)" };
        var command = new Command("costs", "Revenue, cost and margin per tenant and tier for a month; heavy lifters marked with *.") { period, meter };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var report = await api.GetAsync("/v1/costs" + Query(("period", parse.GetValue(period) ?? ThisMonth()), ("meter", parse.GetValue(meter))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(report);
                return ExitCodes.Ok;
            }

            ctx.Table(["TENANT", "TIER", "PLAN", "REVENUE", "DIRECT", "SHARED", "COST", "MARGIN", "MARGIN%", "HEAVY"], report.GetProperty("items").EnumerateArray().Select(i => (IReadOnlyList<string>)
                [i.Str("slug"), i.Str("tier"), i.Str("planId"), i.Str("revenue"), i.Str("directCost"), i.Str("sharedCost"), i.Str("cost"), i.Str("margin"), i.Str("marginPercent"),
                 i.TryGetProperty("heavyLifter", out var h) && h.ValueKind == JsonValueKind.True ? "*" : ""]));
            ctx.Out.WriteLine();
            ctx.Table(["TIER", "TENANTS", "REVENUE", "COST", "MARGIN", "MARGIN%"], report.GetProperty("tiers").EnumerateArray().Select(t => (IReadOnlyList<string>)
                [t.Str("tier"), t.Str("tenants"), t.Str("revenue"), t.Str("cost"), t.Str("margin"), t.Str("marginPercent")]));
            ctx.Out.WriteLine($"{report.Str("period")}: revenue {report.Str("totalRevenue")}, cost {report.Str("totalCost")}, margin {report.Str("margin")} ({report.Str("marginPercent")} %)");
            return ExitCodes.Ok;
        }));

        var day = new Option<string>("--day") { Description = "UTC day, YYYY-MM-DD (default: yesterday)" };
        var previewOnly = new Option<bool>("--preview") { Description = "show the lines without writing them" };
        var run = new Command("run", "Apply the price book (Tenantry:Costs:PriceBook) to a day now: one cost line per tenant and priced item, replacing the day's earlier lines.") { day, previewOnly };
        run.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var d = parse.GetValue(day) ?? DateTime.UtcNow.AddDays(-1).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            var result = await api.SendAsync(HttpMethod.Post, "/v1/costs/run" + Query(("day", d), ("preview", parse.GetValue(previewOnly) ? "true" : null)), null, null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["TENANT", "ITEM", "QUANTITY", "UNIT", "UNIT PRICE", "AMOUNT"], result.GetProperty("items").EnumerateArray().Select(l => (IReadOnlyList<string>)
                [l.Str("slug"), l.Str("item"), l.Str("quantity"), l.Str("unit"), l.Str("unitPrice"), l.Str("amount")]));
            ctx.Out.WriteLine($"{result.Str("day")}: {result.Str("lines")} lines, {result.Str("total")} {result.Str("currency")}{(parse.GetValue(previewOnly) ? " (preview: nothing written)" : "")}");
            return ExitCodes.Ok;
        }));
        command.Subcommands.Add(run);
        return command;
    }

    private static string ThisMonth() => DateTime.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    private static List<JsonElement> Items(JsonElement result) =>
        result.ValueKind == JsonValueKind.Array ? [.. result.EnumerateArray()]
        : result.TryGetProperty("items", out var items) ? [.. items.EnumerateArray()] : [];
}
