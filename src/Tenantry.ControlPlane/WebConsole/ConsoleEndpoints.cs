using System.Collections.Frozen;
using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Tenantry.ControlPlane.WebConsole;

/// <summary>
/// The web console: a static single-page app embedded in this assembly (no CDN, no build step),
/// served at <c>/</c>. It holds nothing secret; everything it shows comes from the API with the
/// operator's token, so nothing is visible before login.
/// </summary>
public static class ConsoleEndpoints
{
    private const string Policy = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    private static readonly FrozenDictionary<string, (byte[] Body, string ContentType)> Assets = Load();

    public static IEndpointRouteBuilder MapTenantryConsole(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/", (HttpContext http) => Serve(http, "index.html")).ExcludeFromDescription();
        routes.MapGet("/console/{file}", (string file, HttpContext http) => Serve(http, file)).ExcludeFromDescription();
        return routes;
    }

    private static IResult Serve(HttpContext http, string file)
    {
        if (!Assets.TryGetValue(file, out var asset))
        {
            return Results.NotFound();
        }

        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = Policy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        return Results.Bytes(asset.Body, asset.ContentType);
    }

    private static FrozenDictionary<string, (byte[], string)> Load()
    {
        var assembly = typeof(ConsoleEndpoints).Assembly;
        var assets = new Dictionary<string, (byte[], string)>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith("console/", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            var file = name["console/".Length..];
            var type = Path.GetExtension(file) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".svg" => "image/svg+xml",
                ".txt" => "text/plain; charset=utf-8",
                _ => "application/octet-stream",
            };
            assets[file] = (memory.ToArray(), type);
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
