using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Events;

/// <summary>The event catalog and the outbox as a timeline (operators).</summary>
public static class EventsApi
{
    public static RouteGroupBuilder MapEventsApi(this RouteGroupBuilder v1)
    {
        var events = v1.MapGroup("/events").WithTags("Events");
        events.MapGet("/", List)
            .WithSummary("Published events, newest first, as CloudEvents 1.0 (with their outbox sequence); ?tenantId= (id or slug), ?type=, ?limit=, ?cursor=.");
        events.MapGet("/types", () => TypedResults.Ok(EventCatalog.Types.Select(t => new EventTypeResponse(t.Key, t.Value))))
            .WithSummary("The catalog of event types a webhook can subscribe to (docs/events.md).");
        return v1;
    }

    private static async Task<Results<Ok<Page<JsonObject>>, ProblemHttpResult>> List(
        string? tenantId, string? type, int? limit, string? cursor, IControlPlaneDatabase db, ITenantRegistry tenants, CancellationToken cancellationToken)
    {
        if (Paging.CheckLimit(limit, out var take) is { } bad)
        {
            return bad.ToResult();
        }

        if (type is not null && !EventCatalog.Types.ContainsKey(type))
        {
            return ApiError.Validation("type", $"Unknown event type '{type}'; GET /v1/events/types lists them.").ToResult();
        }

        if (Paging.CheckSequenceCursor(cursor, out var before) is { } badCursor)
        {
            return badCursor.ToResult();
        }

        var rows = await db.ReadAsync<List<StoredEvent>?>(
            async c =>
            {
                Guid? tenant = null;
                if (tenantId is not null)
                {
                    if (await tenants.FindAsync(c, null, tenantId) is not { } found)
                    {
                        return null;
                    }

                    tenant = found.Id;
                }

                return await EventOutbox.NewestAsync(c, tenant, type, before, take + 1);
            },
            cancellationToken);
        if (rows is null)
        {
            return ApiError.NotFound($"Tenant '{tenantId}'").ToResult();
        }

        var next = rows.Count > take ? Paging.Encode(rows[take - 1].Sequence.ToString(CultureInfo.InvariantCulture)) : null;
        return TypedResults.Ok(new Page<JsonObject>([.. rows.Take(take).Select(Item)], next));
    }

    private static JsonObject Item(StoredEvent e)
    {
        var item = e.ToCloudEvent();
        item["sequence"] = e.Sequence;
        return item;
    }
}

public sealed record EventTypeResponse(string Type, string Description);
