using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Cells;

public sealed record CellsResponse(IReadOnlyList<CellUsage> Items);

/// <summary><c>GET /v1/cells</c>: the cells, their regions, capacities and the tenants each holds.</summary>
public static class CellsApi
{
    public static RouteGroupBuilder MapCellsApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/cells", List).WithTags("Cells")
            .WithSummary("The cells (placement groups): name, region, capacity, PostgreSQL servers and the tenants each holds now.");
        return v1;
    }

    private static async Task<Ok<CellsResponse>> List(IControlPlaneDatabase db, CellPlacement cells, CancellationToken cancellationToken) =>
        TypedResults.Ok(new CellsResponse(await db.ReadAsync(cells.UsageAsync, cancellationToken)));

    /// <summary>Cells from <c>Tenantry:Cells</c>, checked at start-up.</summary>
    public static IServiceCollection AddTenantryCells(this IServiceCollection services)
    {
        // Bound at Tenantry (the list is Tenantry:Cells:N), then read again entry by entry (see CellsOptions.Bind).
        services.AddOptions<CellsOptions>().BindConfiguration(TenantryOptions.Section).PostConfigure<IConfiguration>(CellsOptions.Bind).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CellsOptions>, CellsOptionsValidator>());
        services.TryAddSingleton<CellPlacement>();
        return services;
    }
}
