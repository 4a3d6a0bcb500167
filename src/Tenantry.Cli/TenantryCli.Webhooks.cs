using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary><c>tenantry webhooks</c> and <c>tenantry mails</c>: what the control plane sends out.</summary>
internal static partial class TenantryCli
{
    private static Command WebhooksCommand()
    {
        var webhooks = new Command("webhooks", "Endpoints that receive control-plane events (signed per Standard Webhooks): list, create, delete, deliveries, replay.");

        var list = new Command("list", "The endpoints, with their event filters, tenant and status.");
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var (items, _) = await PagesAsync(api, "/v1/webhooks", 200, null, all: true, ct);
            if (ctx.IsJson)
            {
                ctx.Json(JsonSerializer.SerializeToElement(new { items }, Json.Options));
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "URL", "EVENTS", "TENANT", "STATUS"], items.Select(w => (IReadOnlyList<string>)
                [w.Str("id"), w.Str("url"), string.Join(",", w.GetProperty("events").EnumerateArray().Select(e => e.GetString())),
                 w.Str("tenantId") is { Length: > 0 } t ? t : "all", w.GetProperty("enabled").GetBoolean() ? "enabled" : "disabled"]));
            return ExitCodes.Ok;
        }));
        webhooks.Subcommands.Add(list);

        var url = new Argument<string>("url") { Description = "the endpoint: https://… (http and private addresses only where the control plane allows them)" };
        var events = new Option<string[]>("--event") { Description = "an event type or pattern, e.g. tenant.* (repeatable; default: every event)", AllowMultipleArgumentsPerToken = false };
        var tenant = new Option<string?>("--tenant") { Description = "only this tenant's events (id or slug)" };
        var create = new Command("create", "Register an endpoint; prints its signing secret (whsec_…) once.") { url, events, tenant };
        create.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var filters = parse.GetValue(events) is { Length: > 0 } given ? given : ["*"];
            var created = await api.SendAsync(HttpMethod.Post, "/v1/webhooks", new { url = parse.GetValue(url), events = filters, tenantId = parse.GetValue(tenant) }, null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(created);
            }
            else
            {
                ctx.Out.WriteLine($"Created webhook {created.Str("id")} for {created.Str("url")}.");
                ctx.Out.WriteLine($"Signing secret (shown once): {created.Str("secret")}");
            }

            return ExitCodes.Ok;
        }));
        webhooks.Subcommands.Add(create);

        var deleteId = new Argument<string>("id") { Description = "webhook id" };
        var delete = new Command("delete", "Remove an endpoint with its delivery log.") { deleteId };
        delete.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            await api.SendAsync(HttpMethod.Delete, "/v1/webhooks/" + Escape(parse.GetValue(deleteId)!), null, null, ct);
            ctx.Out.WriteLine($"Deleted webhook {parse.GetValue(deleteId)}.");
            return ExitCodes.Ok;
        }));
        webhooks.Subcommands.Add(delete);

        var logId = new Argument<string>("id") { Description = "webhook id" };
        var status = new Option<string?>("--status") { Description = "pending, succeeded or failed" };
        var limit = new Option<int>("--limit") { Description = "deliveries (1-200), newest first", DefaultValueFactory = _ => 50 };
        var deliveries = new Command("deliveries", "The delivery log: event, status, attempts, last response code, duration and body excerpt.") { logId, status, limit };
        deliveries.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var page = await api.GetAsync("/v1/webhooks/" + Escape(parse.GetValue(logId)!) + "/deliveries"
                + Query(("status", parse.GetValue(status)), ("limit", parse.GetValue(limit).ToString(CultureInfo.InvariantCulture))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "EVENT", "STATUS", "ATTEMPTS", "CODE", "MS", "RESPONSE"], page.GetProperty("items").EnumerateArray().Select(d =>
            {
                var last = d.TryGetProperty("lastAttempt", out var a) && a.ValueKind == JsonValueKind.Object ? a : default;
                var code = last.ValueKind == JsonValueKind.Object ? (last.Str("statusCode") is { Length: > 0 } c ? c : last.Str("error")) : "";
                var excerpt = last.ValueKind == JsonValueKind.Object ? last.Str("responseExcerpt").ReplaceLineEndings(" ") : "";
                return (IReadOnlyList<string>)
                    [d.Str("id"), d.Str("eventType"), d.Str("status"), d.Str("attempts"), code, last.ValueKind == JsonValueKind.Object ? last.Str("durationMs") : "",
                     excerpt.Length > 40 ? excerpt[..40] + "…" : excerpt];
            }));
            return ExitCodes.Ok;
        }));
        webhooks.Subcommands.Add(deliveries);

        var replayHook = new Argument<string>("id") { Description = "webhook id" };
        var replayDelivery = new Argument<string>("delivery") { Description = "delivery id (from deliveries)" };
        var replay = new Command("replay", "Send a delivery's event again (same webhook-id), as a new delivery.") { replayHook, replayDelivery };
        replay.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var replayed = await api.SendAsync(
                HttpMethod.Post, $"/v1/webhooks/{Escape(parse.GetValue(replayHook)!)}/deliveries/{Escape(parse.GetValue(replayDelivery)!)}/replay", null, null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(replayed);
            }
            else
            {
                ctx.Out.WriteLine($"Replaying {replayed.Str("eventType")} {replayed.Str("eventId")} as delivery {replayed.Str("id")}.");
            }

            return ExitCodes.Ok;
        }));
        webhooks.Subcommands.Add(replay);
        return webhooks;
    }

    private static Command MailsCommand()
    {
        var tenant = new Option<string?>("--tenant") { Description = "one tenant's mails (id or slug)" };
        var limit = new Option<int>("--limit") { Description = "mails (1-200), newest first", DefaultValueFactory = _ => 50 };
        var command = new Command("mails", "Mails the control plane sent or queued (welcome, notices, invitations), and where they went.") { tenant, limit };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var page = await api.GetAsync("/v1/mails" + Query(("tenantId", parse.GetValue(tenant)), ("limit", parse.GetValue(limit).ToString(CultureInfo.InvariantCulture))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["TO", "KIND", "STATUS", "SUBJECT", "WHERE"], page.GetProperty("items").EnumerateArray().Select(m => (IReadOnlyList<string>)
                [m.Str("to"), m.Str("kind"), m.Str("status"), m.Str("subject"), m.Str("location") is { Length: > 0 } l ? l : m.Str("error")]));
            return ExitCodes.Ok;
        }));
        return command;
    }
}
