using System.Data.Common;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;
using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.Migrations;

/// <summary>202 to <c>POST /v1/migrations</c>: the run, followed at <c>GET /v1/migrations/{id}</c>.</summary>
public sealed record FleetMigrationAccepted(Guid Id, Guid OperationId, string Kind, string Status);

public sealed record FleetMigrationProgress(int Total, int Done, int Succeeded, int Failed, int Skipped);

/// <summary>One target of a run: the pool (<c>tenantId</c> null) or a tenant, and what happened there once done.</summary>
public sealed record FleetMigrationTargetResponse(Guid? TenantId, string? Slug, string Target, string Status, string? Error, JsonElement? Schema, JsonElement? Apps, DateTimeOffset? FinishedAt);

public sealed record FleetMigrationResponse(
    Guid Id,
    Guid OperationId,
    string Kind,
    string Status,
    bool Succeeded,
    string Schema,
    int LatestVersion,
    FleetMigrationProgress Progress,
    string? Error,
    string Actor,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    IReadOnlyList<FleetMigrationTargetResponse>? Tenants);

/// <summary>
/// Fleet upgrades: the tenant app schema applied to the pool and to every tenant's own database
/// (bridge schema, silo database), then every registered app's current release the same way, as a
/// durable background run (<see cref="FleetMigrationWorker"/>). Resumable by design: each target
/// keeps its own ledgers, so running it again applies only what is missing; one failed tenant does
/// not stop the others and is listed with its error. One run at a time.
/// </summary>
public static class MigrationsApi
{
    public const string Kind = "fleet-migration";

    public static IServiceCollection AddTenantryFleetMigrations(this IServiceCollection services)
    {
        services.AddSingleton<FleetMigrationWorker>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<FleetMigrationWorker>());
        return services;
    }

    public static RouteGroupBuilder MapMigrationsApi(this RouteGroupBuilder v1)
    {
        var group = v1.MapGroup("/migrations").WithTags("Migrations");
        group.MapPost("/", Start)
            .WithSummary("Start a fleet migration (the tenant schema and every app's current release, to the pool and every tenant database) in the background: 202 {id, operationId, kind, status}; 409 while another runs.");
        group.MapGet("/", List).WithSummary("Fleet migrations, newest first, with their progress; cursor-paginated (limit, cursor).");
        group.MapGet("/{id}", Get)
            .WithSummary("A fleet migration: status, progress {total, done, succeeded, failed, skipped} and each target's result; ?status= filters the targets, ?wait=N (0-30 s) answers once it has finished or after N seconds.");
        return v1;
    }

    private static async Task<Results<Accepted<FleetMigrationAccepted>, ProblemHttpResult>> Start(
        IControlPlaneDatabase db, ITenantRegistry registry, TenantSchema schema, FleetMigrationWorker worker, TimeProvider time, ClaimsPrincipal user, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        var targets = new List<(Guid?, string?)> { (null, null) };
        Guid? after = null;
        while (true)
        {
            var page = await db.ReadAsync(c => registry.ListAsync(c, new TenantFilter(null, null, null, after, 500)), ct);
            targets.AddRange(page.Where(t => t.Status is not TenantStatus.Offboarded).Select(t => ((Guid?)t.Id, (string?)t.Slug)));
            if (page.Count < 500)
            {
                break;
            }

            after = page[^1].Id;
        }

        var migration = new FleetMigration
        {
            Id = id,
            Status = FleetMigrationStatus.Pending,
            Schema = schema.Name,
            LatestVersion = schema.Migrations.Count == 0 ? 0 : schema.Migrations[^1].Version,
            Total = targets.Count,
            Done = 0,
            Failed = 0,
            Actor = user.Actor(),
            CreatedAt = now,
        };
        Guid? running;
        try
        {
            running = await db.WriteAsync(async (c, tx) =>
            {
                if (!await FleetMigrationStore.TryInsertAsync(c, tx, migration, targets))
                {
                    return (await FleetMigrationStore.ActiveAsync(c, tx))?.Id ?? Guid.Empty;
                }

                await AuditLog.AppendAsync(c, tx, AuditLog.By(migration.Actor, null, "migrations.start", "accepted", new JsonObject
                {
                    ["migrationId"] = id.ToString(),
                    ["targets"] = targets.Count,
                }, now));
                return (Guid?)null;
            }, ct);
        }
        catch (DbException)
        {
            // Another start won the race for the one active slot.
            running = Guid.Empty;
        }

        if (running is { } other)
        {
            return new ApiError(StatusCodes.Status409Conflict, "migration-running", "A fleet migration is running.",
                other == Guid.Empty ? "Another fleet migration is running; follow it with GET /v1/migrations." : $"Fleet migration {other} is running; follow it at /v1/migrations/{other}.").ToResult();
        }

        worker.Enqueue(id);
        return TypedResults.Accepted($"/v1/migrations/{id}", new FleetMigrationAccepted(id, id, Kind, FleetMigrationStatus.Pending));
    }

    private static async Task<Results<Ok<FleetMigrationResponse>, ProblemHttpResult>> Get(
        string id, string? status, int? wait, IControlPlaneDatabase db, TimeProvider time, CancellationToken ct)
    {
        if (!Guid.TryParse(id, out var migrationId))
        {
            return ApiError.NotFound($"Fleet migration '{id}'").ToResult();
        }

        if (wait is < 0 or > 30)
        {
            return ApiError.Validation("wait", "wait is 0-30 seconds.").ToResult();
        }

        if (status is not (null or FleetMigrationStatus.Pending or FleetMigrationStatus.Succeeded or FleetMigrationStatus.Failed or FleetMigrationStatus.Skipped))
        {
            return ApiError.Validation("status", "status is pending, succeeded, failed or skipped.").ToResult();
        }

        var deadline = time.GetUtcNow().AddSeconds(wait ?? 0);
        var found = await db.ReadAsync(c => FleetMigrationStore.FindAsync(c, null, migrationId), ct);
        while (found is { Finished: false } && deadline - time.GetUtcNow() is { Ticks: > 0 } left)
        {
            await Task.Delay(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200), time, ct);
            found = await db.ReadAsync(c => FleetMigrationStore.FindAsync(c, null, migrationId), ct);
        }

        if (found is null)
        {
            return ApiError.NotFound($"Fleet migration '{id}'").ToResult();
        }

        var targets = await db.ReadAsync(c => FleetMigrationStore.TargetsAsync(c, null, migrationId, status), ct);
        var counts = await db.ReadAsync(c => FleetMigrationStore.TargetsAsync(c, null, migrationId, FleetMigrationStatus.Skipped), ct);
        return TypedResults.Ok(Response(found, counts.Count, [.. targets.Select(Target)]));
    }

    private static async Task<Results<Ok<Page<FleetMigrationResponse>>, ProblemHttpResult>> List(int? limit, string? cursor, IControlPlaneDatabase db, CancellationToken ct)
    {
        if (Paging.CheckLimit(limit, out var take) is { } limitError)
        {
            return limitError.ToResult();
        }

        Guid? before = null;
        if (cursor is not null)
        {
            if (!Guid.TryParse(Paging.Decode(cursor), out var position))
            {
                return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
            }

            before = position;
        }

        var rows = await db.ReadAsync(c => FleetMigrationStore.ListAsync(c, before, take + 1), ct);
        var items = rows.Take(take).Select(m => Response(m, skipped: null, tenants: null)).ToList();
        return TypedResults.Ok(new Page<FleetMigrationResponse>(items, rows.Count > take ? Paging.Encode(items[^1].Id.ToString()) : null));
    }

    private static FleetMigrationResponse Response(FleetMigration m, int? skipped, IReadOnlyList<FleetMigrationTargetResponse>? tenants) => new(
        m.Id, m.Id, Kind, m.Status, m.Status == FleetMigrationStatus.Succeeded, m.Schema, m.LatestVersion,
        new FleetMigrationProgress(m.Total, m.Done, m.Done - m.Failed - (skipped ?? 0), m.Failed, skipped ?? 0),
        m.Error, m.Actor, m.CreatedAt, m.StartedAt, m.FinishedAt, tenants);

    private static FleetMigrationTargetResponse Target(FleetMigrationTarget t)
    {
        JsonElement? schema = null, apps = null;
        string? target = null;
        if (t.Result is { } json)
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            schema = root.TryGetProperty("schema", out var s) && s.ValueKind != JsonValueKind.Null ? s.Clone() : null;
            apps = root.TryGetProperty("apps", out var a) ? a.Clone() : null;
            target = root.TryGetProperty("target", out var g) ? g.GetString() : null;
        }

        return new FleetMigrationTargetResponse(t.TenantId, t.Slug, target ?? t.Slug ?? "pool", t.Status, t.Error, schema, apps, t.FinishedAt);
    }
}
