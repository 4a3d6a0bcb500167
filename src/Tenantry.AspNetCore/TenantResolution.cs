using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.AspNetCore;

/// <summary>Wires an ASP.NET Core app to the tenant context the Tenantry gateway sends.</summary>
public static class TenantResolution
{
    /// <summary>
    /// Registers <see cref="ITenantContext"/> (per request), the tenant-context verifier, and the exception handler that answers a
    /// write refused by a tier change's freeze 503 <c>tenant-frozen</c> (it runs when the app calls <c>app.UseExceptionHandler()</c>).
    /// </summary>
    public static IServiceCollection AddTenantryApp(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<TenantryAppOptions>().BindConfiguration(TenantryAppOptions.Section)
            .Configure<IConfiguration>(FromInstanceEnvironment)
            .ValidateSettings(TenantryAppOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TenantryAppOptions>, TenantryAppOptionsValidator>());
        services.AddHttpContextAccessor();
        services.TryAddSingleton<TenantContextVerifier>();
        services.TryAddScoped<ITenantContext>(sp =>
            sp.GetRequiredService<IHttpContextAccessor>().HttpContext?.Features.Get<TenantContext>()
            ?? throw new InvalidOperationException("No tenant was resolved for this request; add app.UseTenantResolution() before the endpoints."));
        services.AddProblemDetails();
        services.AddExceptionHandler<TenantFrozenHandler>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddHostedService<StagingCleanup>();
        return services;
    }

    /// <summary>
    /// What Tenantry tells an instance it starts (<see cref="TenantryEnvironment"/>), for the settings under
    /// <c>Tenantry:App</c> that are not set: the JWKS, the app's name as the audience, and a dedicated
    /// instance's tenant. A <c>TENANTRY_TENANT_ID</c> that is not a UUID is left for the validator to refuse.
    /// </summary>
    private static void FromInstanceEnvironment(TenantryAppOptions options, IConfiguration configuration)
    {
        options.ContextJwks ??= NonEmpty(configuration[TenantryEnvironment.ContextJwks]);
        if (configuration[TenantryAppOptions.Section + ":Audience"] is null && NonEmpty(configuration[TenantryEnvironment.App]) is { } app)
        {
            options.Audience = app;
        }

        if (options.TenantId is null && Guid.TryParse(NonEmpty(configuration[TenantryEnvironment.TenantId]), CultureInfo.InvariantCulture, out var tenant))
        {
            options.TenantId = tenant;
        }

        options.Database ??= NonEmpty(configuration[TenantryEnvironment.Database]);
        options.DataUrl ??= Uri.TryCreate(NonEmpty(configuration[TenantryEnvironment.DataUrl]), UriKind.Absolute, out var url) ? url : null;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    /// <summary>
    /// Resolves the tenant of each request from the gateway's tenant-context token. A request without
    /// a valid token (missing, forged, expired, for another app) gets 401; a token of another tenant
    /// than a dedicated instance's, or of a silo tenant at a shared instance, gets 403.
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
    TenantContextVerifier verifier,
    IOptions<TenantryAppOptions> options,
    ILogger<TenantResolutionMiddleware> logger)
{
    private static readonly Func<ILogger, Guid, IDisposable?> TenantScope = LoggerMessage.DefineScope<Guid>("Tenant {TenantId}");
    private readonly TenantryAppOptions _options = options.Value;

    public async Task InvokeAsync(HttpContext http)
    {
        if (_options.AnonymousPaths.Contains(http.Request.Path.Value ?? "", StringComparer.Ordinal))
        {
            await next(http);
            return;
        }

        var presented = http.Request.Headers[TenantContextToken.Header];
        var result = await verifier.VerifyAsync(presented.Count == 1 ? presented[0] : null);
        if (result.Verdict == TenantContextVerdict.WrongTenant)
        {
            Log.WrongTenant(logger, http.Request.Path, _options.TenantId);
            await Problem(http, StatusCodes.Status403Forbidden, "tenant-mismatch", "Wrong tenant.",
                _options.TenantId is null ? "This shared instance does not serve dedicated tenants." : "This is a dedicated instance of another tenant.");
            return;
        }

        if (result.Context is not { } tenant)
        {
            Log.NoContext(logger, http.Request.Path, result.Verdict);
            await Problem(http, StatusCodes.Status401Unauthorized, "tenant-context-missing", "No tenant context.",
                "This app serves requests that come through the Tenantry gateway only.");
            return;
        }

        http.Features.Set(tenant);
        using (TenantScope(logger, tenant.TenantId))
        {
            await next(http);
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
        [LoggerMessage(1, LogLevel.Warning, "Refused a request to {Path} without a valid tenant context: {Verdict}")]
        public static partial void NoContext(ILogger logger, PathString path, TenantContextVerdict verdict);

        [LoggerMessage(2, LogLevel.Warning, "Refused a request to {Path} of a tenant this instance does not serve (dedicated to {DedicatedTenantId})")]
        public static partial void WrongTenant(ILogger logger, PathString path, Guid? dedicatedTenantId);
    }
}

/// <summary>
/// The tenant-context JWKS must parse and hold public EC P-256 keys only. A dedicated instance's
/// <c>TENANTRY_TENANT_ID</c> must be a UUID: ignoring a bad one would make the instance a shared one
/// that serves every pool tenant.
/// </summary>
internal sealed class TenantryAppOptionsValidator(IConfiguration configuration) : IValidateOptions<TenantryAppOptions>
{
    public ValidateOptionsResult Validate(string? name, TenantryAppOptions options)
    {
        if (options.TenantId is null && configuration[TenantryEnvironment.TenantId] is { } tenant && !string.IsNullOrWhiteSpace(tenant)
            && !Guid.TryParse(tenant, CultureInfo.InvariantCulture, out _))
        {
            return ValidateOptionsResult.Fail($"{TenantryEnvironment.TenantId}: '{tenant}' is not a tenant id (a UUID).");
        }

        if (string.IsNullOrWhiteSpace(options.ContextJwks))
        {
            return ValidateOptionsResult.Skip;
        }

        try
        {
            _ = TenantContextVerifier.PublicKeys(options.ContextJwks);
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException e)
        {
            return ValidateOptionsResult.Fail($"Tenantry:App:ContextJwks ({TenantContextToken.JwksVariable}): {e.Message}");
        }
    }
}
