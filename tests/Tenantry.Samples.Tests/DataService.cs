using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Tenantry.Samples.Tests;

/// <summary>
/// A real loopback HTTP listener that answers a shared instance's <c>GET {TENANTRY_DATA_URL}</c> as Tenantry's
/// data service does: the tenant is the one of the request's <c>X-Tenant-Context</c>; 200
/// <c>{"database": "Data Source=…", "schema": null}</c> for a bridge tenant it knows, 503 for one that is not
/// active, 403 for any other tenant, 401 without a token. It records the tokens it was sent.
/// </summary>
internal sealed class DataService : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, string?> _tenants = new(StringComparer.Ordinal);

    private DataService(WebApplication app) => _app = app;

    public string Url { get; private set; } = "";

    /// <summary>The tokens of the lookups, in order.</summary>
    public ConcurrentQueue<string> Tokens { get; } = new();

    public static async Task<DataService> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var service = new DataService(app);
        app.MapGet("/v1/app-data", service.Answer);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        service.Url = address.TrimEnd('/') + "/v1/app-data";
        return service;
    }

    /// <summary>A bridge tenant whose database is the SQLite file <paramref name="path"/>.</summary>
    public void Serve(TenantClaims tenant, string path) => _tenants[tenant.Id] = path;

    /// <summary>A tenant the service knows but whose data is not available now (suspended, moving).</summary>
    public void Deactivate(TenantClaims tenant) => _tenants[tenant.Id] = null;

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private IResult Answer(HttpRequest request)
    {
        var presented = request.Headers["X-Tenant-Context"];
        if (presented.Count != 1 || presented[0] is not { Length: > 0 } token)
        {
            return Results.StatusCode(StatusCodes.Status401Unauthorized);
        }

        Tokens.Enqueue(token);
        var parts = token.Split('.');
        var tenant = parts.Length == 3 ? JsonNode.Parse(Base64Url.DecodeFromChars(parts[1]))?["tenant_id"]?.GetValue<string>() : null;
        if (tenant is null || !_tenants.TryGetValue(tenant, out var path))
        {
            return Results.StatusCode(StatusCodes.Status403Forbidden);
        }

        return path is null
            ? Results.StatusCode(StatusCodes.Status503ServiceUnavailable)
            : Results.Json(new { database = "Data Source=" + path, schema = (string?)null });
    }
}
