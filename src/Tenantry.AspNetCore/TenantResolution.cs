using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.AspNetCore;

public static class TenantResolution
{
    /// <summary>Registers <see cref="ITenantContext"/> (per request) and the tenant-context verifier.</summary>
    public static IServiceCollection AddTenantryApp(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<TenantryAppOptions>().BindConfiguration(TenantryAppOptions.Section).ValidateSettings(TenantryAppOptions.Section).ValidateOnStart();
        services.AddHttpContextAccessor();
        services.TryAddSingleton(sp => new TenantContextHeaders(
            TenantContextHeaders.LoadOrCreateKey(sp.GetRequiredService<IOptions<TenantryAppOptions>>().Value.ContextKeyPath)));
        services.TryAddScoped<ITenantContext>(sp =>
            sp.GetRequiredService<IHttpContextAccessor>().HttpContext?.Features.Get<TenantContext>()
            ?? throw new InvalidOperationException("No tenant was resolved for this request; add app.UseTenantResolution() before the endpoints."));
        services.AddProblemDetails();
        services.TryAddSingleton(TimeProvider.System);
        services.AddHostedService<StagingCleanup>();
        return services;
    }

    /// <summary>
    /// Resolves the tenant of each request from the gateway's signed context headers. A request
    /// without a valid context gets 401; one for another tenant than a dedicated instance's gets 403.
    /// Nothing after this middleware runs without a tenant.
    /// </summary>
    public static IApplicationBuilder UseTenantResolution(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseMiddleware<TenantResolutionMiddleware>();
    }

    /// <summary>The tenant of the request (after <see cref="UseTenantResolution"/>).</summary>
    public static TenantContext GetTenant(this HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        return http.Features.Get<TenantContext>() ?? throw new InvalidOperationException("No tenant was resolved for this request.");
    }
}

internal sealed partial class TenantResolutionMiddleware(
    RequestDelegate next,
    TenantContextHeaders headers,
    IOptions<TenantryAppOptions> options,
    ILogger<TenantResolutionMiddleware> logger)
{
    private static readonly Func<ILogger, Guid, IDisposable?> TenantScope = LoggerMessage.DefineScope<Guid>("Tenant {TenantId}");
    private readonly TenantryAppOptions _options = options.Value;

    public Task InvokeAsync(HttpContext http)
    {
        if (_options.AnonymousPaths.Contains(http.Request.Path.Value ?? "", StringComparer.Ordinal))
        {
            return next(http);
        }

        var tenant = headers.Read(http.Request.Headers);
        if (tenant is null)
        {
            Log.NoContext(logger, http.Request.Path);
            return Problem(http, StatusCodes.Status401Unauthorized, "tenant-context-missing", "No tenant context.",
                "This app serves requests that come through the Tenantry gateway only.");
        }

        if (_options.TenantId is { } only && only != tenant.TenantId)
        {
            Log.WrongTenant(logger, tenant.TenantId, only);
            return Problem(http, StatusCodes.Status403Forbidden, "tenant-mismatch", "Wrong tenant.",
                "This is a dedicated instance of another tenant.");
        }

        http.Features.Set(tenant);
        using (TenantScope(logger, tenant.TenantId))
        {
            return next(http);
        }
    }

    internal static Task Problem(HttpContext http, int status, string kind, string title, string detail)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(
            new Microsoft.AspNetCore.Mvc.ProblemDetails { Status = status, Type = "https://tenantry.dev/problems/" + kind, Title = title, Detail = detail },
            (System.Text.Json.JsonSerializerOptions?)null,
            "application/problem+json");
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Refused a request to {Path} without a valid tenant context")]
        public static partial void NoContext(ILogger logger, PathString path);

        [LoggerMessage(2, LogLevel.Warning, "Refused a request of tenant {TenantId} on the dedicated instance of {DedicatedTenantId}")]
        public static partial void WrongTenant(ILogger logger, Guid tenantId, Guid dedicatedTenantId);
    }
}
