using System.Security.Claims;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Database;
using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.Migrations;

public sealed record MigrationResultResponse(
    string Target, Guid? TenantId, string Isolation, IReadOnlyList<int> Applied, int AlreadyApplied, int? FailedVersion, string? Error, double DurationMs);

/// <summary>One tenant's part of a registered app's release: where its migrations went and what happened there.</summary>
public sealed record AppMigrationTenantResponse(
    Guid TenantId, string Slug, string Target, string Outcome, IReadOnlyList<string> Applied, int AlreadyApplied, string? FailedMigration, string? Error);

/// <summary>A registered app's current release applied to the fleet.</summary>
public sealed record AppMigrationReportResponse(
    string App, string Release, int Migrations, bool Succeeded, int Failed, IReadOnlyList<AppMigrationTenantResponse> Tenants);

public sealed record MigrationReportResponse(
    string Schema,
    int LatestVersion,
    bool Succeeded,
    int Targets,
    int Failed,
    int Applied,
    double DurationMs,
    IReadOnlyList<MigrationResultResponse> Results,
    IReadOnlyList<AppMigrationReportResponse> Apps);

/// <summary>
/// Fleet upgrades: the tenant app schema applied to the pool and to every tenant's own database
/// (bridge schema, silo database) with bounded parallelism, then every registered app's current
/// release the same way. Resumable by design: each target keeps its own ledgers, so running it
/// again applies only what is missing; one failed tenant does not stop the others and is listed
/// with its error.
/// </summary>
public static class MigrationsApi
{
    public static RouteGroupBuilder MapMigrationsApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/migrations", Run).WithTags("Migrations")
            .WithSummary("Apply the tenant app schema and every registered app's current release to the pool and every tenant database; answers a per-tenant report.");
        return v1;
    }

    private static async Task<Ok<MigrationReportResponse>> Run(
        IControlPlaneDatabase db,
        ITenantRegistry registry,
        ITenantDatabaseProvider databases,
        CurrentReleases releases,
        TenantSchema schema,
        IOptions<TenantryOptions> options,
        TimeProvider time,
        ClaimsPrincipal user,
        CancellationToken cancellationToken)
    {
        var tenants = new List<TenantRef>();
        Guid? after = null;
        while (true)
        {
            var page = await db.ReadAsync(c => registry.ListAsync(c, new TenantFilter(null, null, null, after, 500)), cancellationToken);
            tenants.AddRange(page
                .Where(t => t.Status is not TenantStatus.Offboarded)
                .Select(t => new TenantRef(t.Id, t.Slug, t.Name, t.Tier, t.Isolation, t.AdminEmail)));
            if (page.Count < 500)
            {
                break;
            }

            after = page[^1].Id;
        }

        var report = await databases.MigrateAsync(tenants, cancellationToken);
        var apps = await releases.ApplyToFleetAsync(tenants, options.Value.Postgres.MigrationParallelism, cancellationToken);
        var bySlug = tenants.ToDictionary(t => t.Slug, t => t.Id, StringComparer.Ordinal);
        var slugs = tenants.ToDictionary(t => t.Id, t => t.Slug);
        var appReports = apps.Select(a => new AppMigrationReportResponse(
            a.Release.App,
            a.Release.Version,
            a.Release.Migrations.Count,
            a.Results.All(r => r.Succeeded),
            a.Results.Count(r => !r.Succeeded),
            [.. a.Results.Select(r => new AppMigrationTenantResponse(
                r.TenantId, slugs[r.TenantId], r.Target, Outcome(r.Outcome), r.Applied, r.AlreadyApplied, r.FailedMigration, r.Error))])).ToList();
        var response = new MigrationReportResponse(
            schema.Name,
            schema.Migrations.Count == 0 ? 0 : schema.Migrations[^1].Version,
            report.Succeeded && appReports.All(a => a.Succeeded),
            report.Targets.Count,
            report.Failed.Count(),
            report.AppliedCount,
            report.Duration.TotalMilliseconds,
            [.. report.Targets.Select(r => new MigrationResultResponse(
                r.Target, bySlug.TryGetValue(r.Target, out var id) ? id : null, r.Isolation.ToWire(), r.Applied, r.AlreadyApplied, r.FailedVersion, r.Error, r.Duration.TotalMilliseconds))],
            appReports);

        await db.WriteAsync(
            (c, tx) => AuditLog.AppendAsync(c, tx, new AuditEvent
            {
                Id = Guid.NewGuid(),
                Time = time.GetUtcNow(),
                Actor = user.Actor(),
                Action = "migrations.run",
                Outcome = response.Succeeded ? "succeeded" : "failed",
                Detail = new JsonObject
                {
                    ["schema"] = schema.Name,
                    ["targets"] = response.Targets,
                    ["failed"] = new JsonArray([.. report.Failed.Select(f => (JsonNode)JsonValue.Create(f.Target))]),
                    ["applied"] = response.Applied,
                    ["apps"] = new JsonArray([.. appReports.Select(a => (JsonNode)new JsonObject
                    {
                        ["app"] = a.App,
                        ["release"] = a.Release,
                        ["failed"] = new JsonArray([.. a.Tenants.Where(t => t.Outcome == "failed").Select(t => (JsonNode)JsonValue.Create(t.TenantId.ToString()))]),
                    })]),
                },
            }),
            cancellationToken);
        return TypedResults.Ok(response);
    }

    private static string Outcome(ReleaseMigrationOutcome outcome) => outcome switch
    {
        ReleaseMigrationOutcome.Applied => "applied",
        ReleaseMigrationOutcome.UpToDate => "up-to-date",
        ReleaseMigrationOutcome.NoDatabase => "no-database",
        _ => "failed",
    };
}
