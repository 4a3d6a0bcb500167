using Microsoft.AspNetCore.Http.HttpResults;
using Tenantry.AspNetCore;
using Tenantry.Data;

namespace MyTenantryApp;

/// <summary>The tenant's items: every query runs in a session that sees the tenant's rows only.</summary>
public static class ItemsApi
{
    private const int MaxNameLength = 200;

    /// <summary>Maps <c>GET</c> and <c>POST {prefix}/items</c>.</summary>
    public static RouteGroupBuilder MapItemsApi(this IEndpointRouteBuilder routes, string prefix)
    {
        var items = routes.MapGroup(prefix.TrimEnd('/') + "/items");
        items.MapGet("/", ListAsync);
        items.MapPost("/", CreateAsync);
        return items;
    }

    private static async Task<Ok<List<Item>>> ListAsync(ITenantContext tenant, TenantDatabase database, ITenantDataSource data, CancellationToken cancellationToken)
    {
        await using var session = await data.OpenReadSessionAsync(database.For(tenant.TenantId, tenant.Slug, tenant.Isolation), cancellationToken);
        var items = await session.QueryAsync(
            "SELECT id, name FROM items ORDER BY name, id",
            row => new Item(row.GetGuid(0), row.GetString(1)),
            cancellationToken: cancellationToken);
        return TypedResults.Ok(items);
    }

    private static async Task<Results<Created<Item>, ValidationProblem>> CreateAsync(
        NewItem body, HttpRequest request, ITenantContext tenant, TenantDatabase database, ITenantDataSource data, CancellationToken cancellationToken)
    {
        var name = body.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > MaxNameLength)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["name"] = [$"A name is 1-{MaxNameLength} characters."] });
        }

        var item = new Item(Guid.CreateVersion7(), name);
        await using var session = await data.OpenSessionAsync(database.For(tenant.TenantId, tenant.Slug, tenant.Isolation), cancellationToken);
        // Values go in as parameters; tenant_id is the verified tenant's, and the pool's filter refuses any other.
        await session.ExecuteAsync(
            "INSERT INTO items (tenant_id, id, name) VALUES (@tenant, @id, @name)",
            [("@tenant", tenant.TenantId), ("@id", item.Id), ("@name", item.Name)],
            cancellationToken);
        await session.CommitAsync(cancellationToken);
        return TypedResults.Created($"{request.PathBase}{request.Path.Value?.TrimEnd('/')}/{item.Id}", item);
    }
}

/// <summary>An item of the tenant.</summary>
public sealed record Item(Guid Id, string Name);

/// <summary>The body of <c>POST …/items</c>.</summary>
public sealed record NewItem(string? Name);
