using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OpenIddict.Server;
using OpenIddict.Validation;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Keys;

/// <summary>The key ring's endpoints: list the keys (never their material) and rotate them.</summary>
public static class KeysApi
{
    /// <summary>The key ring, its reload and rotation schedule, and the options it changes when it reloads.</summary>
    public static IServiceCollection AddTenantryKeyRing(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<KeyRingOptions>().BindConfiguration(KeyRingOptions.Section).ValidateSettings(KeyRingOptions.Section).ValidateOnStart();
        services.TryAddSingleton<KeyRing>();
        services.TryAddSingleton<ITokenKeys>(sp => sp.GetRequiredService<KeyRing>());
        services.TryAddSingleton<IKeyRing>(sp => sp.GetRequiredService<KeyRing>());
        services.TryAddSingleton<IKeyRingSecrets, KeyRingSecrets>();
        services.TryAddSingleton<KeyRingOptionsChanges>();
        services.AddSingleton(sp => sp.GetRequiredService<KeyRingOptionsChanges>().Server);
        services.AddSingleton(sp => sp.GetRequiredService<KeyRingOptionsChanges>().Validation);
        services.AddHostedService<KeyRingStartup>();
        services.AddHostedService<KeyRingReloader>();
        return services;
    }

    public static RouteGroupBuilder MapKeysApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        var keys = v1.MapGroup("/keys").WithTags("Keys");
        keys.MapGet("/", List).WithSummary("The key ring: each key's id, kind (signing, encryption, tenant-context, data-protection), created, status (current, next, retiring, retired) and when it retires; never key material.");
        keys.MapPost("/rotate", Rotate).Accepts<RotateKeysRequest>("application/json")
            .WithSummary("Rotate keys: optional body {keys:[\"signing\",\"encryption\",\"tenant-context\",\"data-protection\"]}, all when absent. 200 {current, retiring}: the new keys sign at once; the replaced ones validate until retiresAt. Every replica and gateway reloads the ring without a restart.");
        return v1;
    }

    private static async Task<Ok<KeyList>> List(IKeyRing ring, CancellationToken cancellationToken) =>
        TypedResults.Ok(new KeyList([.. await ring.ListAsync(cancellationToken)]));

    private static async Task<Results<Ok<KeyRotationResult>, ProblemHttpResult>> Rotate(HttpContext http, IKeyRing ring)
    {
        List<string> kinds = [];
        if (http.Request.ContentLength is > 0 || http.Request.Headers.TransferEncoding.Count > 0)
        {
            var (body, error) = await JsonBody.ReadAsync<RotateKeysRequest>(http.Request);
            if (error is not null)
            {
                return error.ToResult();
            }

            if (body?.Keys is { } named)
            {
                if (named.Count == 0)
                {
                    return ApiError.Validation("keys", $"Name at least one kind ({string.Join(", ", IKeyRing.Kinds)}), or send no body to rotate all.").ToResult();
                }

                var unknown = named.FirstOrDefault(k => k is null || !IKeyRing.Kinds.Contains(k));
                if (named.Any(k => k is null || !IKeyRing.Kinds.Contains(k)))
                {
                    return ApiError.Validation("keys", $"'{unknown}' is not a kind of key; kinds are {string.Join(", ", IKeyRing.Kinds)}.").ToResult();
                }

                kinds = [.. named.OfType<string>().Distinct(StringComparer.Ordinal)];
            }
        }

        return TypedResults.Ok(await ring.RotateAsync(kinds, http.User.Actor(), http.RequestAborted));
    }
}

/// <summary>The body of <c>POST /v1/keys/rotate</c>.</summary>
public sealed record RotateKeysRequest(List<string?>? Keys);

/// <summary>The body of <c>GET /v1/keys</c>.</summary>
public sealed record KeyList(List<KeyInfo> Items);
