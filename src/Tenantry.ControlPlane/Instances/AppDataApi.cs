using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Tenantry.AspNetCore;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Providers;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Instances;

/// <summary>
/// <c>GET /v1/app-data</c>: where a pool or bridge tenant's data lives, for a shared app instance that
/// serves a request of that tenant. The instance presents the request's own tenant-context token
/// (<c>X-Tenant-Context</c>), which only the gateway can sign: so an instance learns the data of a
/// tenant only while the gateway sends it that tenant's requests, never a silo tenant's (their
/// dedicated instances get their own database in <c>TENANTRY_DATABASE</c>), and never for long.
/// </summary>
public static class AppDataApi
{
    public static IEndpointRouteBuilder MapAppDataApi(this IEndpointRouteBuilder routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        routes.MapGet("/v1/app-data", (HttpContext http, AppDataLookup lookup) => lookup.AnswerAsync(http))
            .AllowAnonymous()
            .WithTags("Apps")
            .WithSummary("A pool or bridge tenant's database connection, for a shared app instance presenting that tenant's X-Tenant-Context token.");
        return routes;
    }
}

/// <summary>Verifies the presented token for the app it names and answers with the tenant's data location.</summary>
internal sealed class AppDataLookup(IAppRegistry apps, ITenantDataLocator locator, TimeProvider time, AppInstanceEnvironment? environment = null)
{
    private readonly ConcurrentDictionary<string, (string Jwks, TenantContextVerifier Verifier)> _verifiers = new(StringComparer.Ordinal);

    public async Task<IResult> AnswerAsync(HttpContext http)
    {
        var presented = http.Request.Headers[TenantContextToken.Header];
        if (presented.Count != 1 || AudienceOf(presented[0]) is not { } appName || await apps.FindAsync(appName, http.RequestAborted) is null)
        {
            return new ApiError(StatusCodes.Status401Unauthorized, "tenant-context-missing", "No valid tenant context.", "Present the request's X-Tenant-Context token of a registered app.").ToResult();
        }

        var result = await Verifier(appName).VerifyAsync(presented[0]);
        if (result.Verdict == TenantContextVerdict.WrongTenant)
        {
            return new ApiError(StatusCodes.Status403Forbidden, "silo-tenant", "A silo tenant's data is its dedicated instance's.", "Shared instances serve pool and bridge tenants only.").ToResult();
        }

        if (result.Context is not { } tenant)
        {
            return new ApiError(StatusCodes.Status401Unauthorized, "tenant-context-invalid", "The tenant context was refused.", $"The token did not verify: {result.Verdict}.").ToResult();
        }

        var located = await locator.LocateAsync(tenant.TenantId, tenant.Slug, tenant.Isolation, http.RequestAborted);
        if (located is null)
        {
            http.Response.Headers.RetryAfter = "1";
            return new ApiError(StatusCodes.Status503ServiceUnavailable, "tenant-data-unavailable", "The tenant's data is not available.",
                "The tenant is not active, its database is not ready yet, or it no longer exists.").ToResult();
        }

        return TypedResults.Ok(new AppDataResponse(tenant.TenantId, tenant.Isolation.ToWire(), AppInstances.ConnectionString(located.Target),
            located.Target is PostgresBridgeTarget bridge ? bridge.Schema : null));
    }

    private TenantContextVerifier Verifier(string app)
    {
        var jwks = environment?.Variables().GetValueOrDefault(TenantContextToken.JwksVariable)
            ?? throw new InvalidOperationException("This host hands app instances no tenant-context keys.");
        var known = _verifiers.GetValueOrDefault(app);
        if (known.Jwks == jwks)
        {
            return known.Verifier;
        }

        var verifier = new TenantContextVerifier(Options.Create(new TenantryAppOptions { ContextJwks = jwks, Audience = app }), time);
        _verifiers[app] = (jwks, verifier);
        return verifier;
    }

    /// <summary>The app a token names as its first audience, unverified (the verifier for that app checks it).</summary>
    private static string? AudienceOf(string? token)
    {
        try
        {
            return token is null ? null : new JsonWebToken(token).Audiences.FirstOrDefault();
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}

public sealed record AppDataResponse(Guid TenantId, string Isolation, string Database, string? Schema);
