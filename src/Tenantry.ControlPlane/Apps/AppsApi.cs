using Tenantry.ControlPlane.Audit;
using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Apps;

public static class AppsApi
{
    /// <summary>The app registry's services.</summary>
    public static IServiceCollection AddTenantryApps(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<AppRegistry>();
        services.TryAddSingleton<IAppRegistry>(sp => sp.GetRequiredService<AppRegistry>());
        return services;
    }

    public static RouteGroupBuilder MapAppsApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        var apps = v1.MapGroup("/apps").WithTags("Apps");
        apps.MapPost("/", Register).Accepts<CreateAppRequest>("application/json")
            .WithSummary("Register an application: {name, routePrefix, healthPath, shared:{instances}}; 201 with the app, 409 when the name exists.");
        apps.MapGet("/", List).WithSummary("Registered applications by name, each with its current release; cursor-paginated.");
        apps.MapGet("/{app}", Get).WithSummary("An application with its current release.");
        apps.MapPost("/{app}/releases", CreateRelease).Accepts<CreateReleaseRequest>("application/json")
            .WithSummary("Create an immutable release: {version, process:{command, args[], workingDirectory?, env{}}, image?, migrations:[{id, sql}] | migrationsPath}; 409 on a version that exists, 422 when the command is missing or the migrations are not forward only. The app's first release becomes its current release.");
        apps.MapGet("/{app}/releases", Releases).WithSummary("The application's releases, oldest first; cursor-paginated.");
        return v1;
    }

    private static async Task<Results<Created<AppResponse>, ProblemHttpResult>> Register(HttpContext http, AppRegistry registry)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateAppRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var (app, registerError) = await registry.RegisterAsync(body!, http.User.Actor(), http.RequestAborted);
        return registerError is not null ? registerError.ToResult() : TypedResults.Created($"/v1/apps/{app!.Name}", app);
    }

    private static async Task<Results<Ok<Page<AppResponse>>, ProblemHttpResult>> List(IControlPlaneDatabase db, int? limit, string? cursor)
    {
        if (Paging.CheckLimit(limit, out var take) is { } limitError)
        {
            return limitError.ToResult();
        }

        string? after = null;
        if (cursor is not null && AppRules.CheckName(after = Paging.Decode(cursor)) is not null)
        {
            return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
        }

        var rows = await db.ReadAsync(async c =>
        {
            var apps = await AppStore.ListAsync(c, after, take + 1);
            var result = new List<AppResponse>();
            foreach (var app in apps)
            {
                var current = app.CurrentRelease is null ? null : await AppStore.GetReleaseAsync(c, null, app.Name, app.CurrentRelease);
                result.Add(AppResponse.From(app, current));
            }

            return result;
        });
        var items = rows.Take(take).ToList();
        return TypedResults.Ok(new Page<AppResponse>(items, rows.Count > take ? Paging.Encode(items[^1].Name) : null));
    }

    private static async Task<Results<Ok<AppResponse>, ProblemHttpResult>> Get(string app, IControlPlaneDatabase db)
    {
        var found = await db.ReadAsync(async c =>
        {
            var row = await AppStore.FindAsync(c, null, app);
            return row is null ? null : AppResponse.From(row, row.CurrentRelease is null ? null : await AppStore.GetReleaseAsync(c, null, row.Name, row.CurrentRelease));
        });
        return found is null ? ApiError.NotFound($"App '{app}'").ToResult() : TypedResults.Ok(found);
    }

    private static async Task<Results<Created<ReleaseResponse>, ProblemHttpResult>> CreateRelease(string app, HttpContext http, AppRegistry registry)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateReleaseRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var (release, createError) = await registry.CreateReleaseAsync(app, body!, http.User.Actor(), http.RequestAborted);
        return createError is not null
            ? createError.ToResult()
            : TypedResults.Created($"/v1/apps/{release!.App}/releases/{Uri.EscapeDataString(release.Version)}", release);
    }

    private static async Task<Results<Ok<Page<ReleaseResponse>>, ProblemHttpResult>> Releases(string app, IControlPlaneDatabase db, int? limit, string? cursor)
    {
        if (Paging.CheckLimit(limit, out var take) is { } limitError)
        {
            return limitError.ToResult();
        }

        long after = 0;
        if (cursor is not null && !long.TryParse(Paging.Decode(cursor), NumberStyles.None, CultureInfo.InvariantCulture, out after))
        {
            return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
        }

        var rows = await db.ReadAsync(async c =>
            await AppStore.FindAsync(c, null, app) is null ? null : await AppStore.ListReleasesAsync(c, app, after, take + 1));
        if (rows is null)
        {
            return ApiError.NotFound($"App '{app}'").ToResult();
        }

        var items = rows.Take(take).ToList();
        var next = rows.Count > take ? Paging.Encode(items[^1].Sequence.ToString(CultureInfo.InvariantCulture)) : null;
        return TypedResults.Ok(new Page<ReleaseResponse>([.. items.Select(ReleaseResponse.From)], next));
    }
}
