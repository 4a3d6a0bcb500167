using System.Security.Claims;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;
using OpenIddict.Validation.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Identity;

/// <summary>The OIDC issuer (OpenIddict): client credentials at <c>/connect/token</c>, JWT access tokens.</summary>
public static class IdentityApi
{
    public const string AdminScope = "tenantry:admin";
    public const string AdminPolicy = "tenantry-admin";
    public const string OperatorClientId = "operator";

    internal static void AddTenantryIdentity(this IServiceCollection services)
    {
        services.AddOpenIddict()
            .AddServer(server =>
            {
                server.SetTokenEndpointUris("connect/token");
                server.AllowClientCredentialsFlow();
                server.RegisterScopes(AdminScope);
                server.DisableAccessTokenEncryption();
                // Clients live in Tenantry's own store, so OpenIddict runs without its EF stores
                // and the handler below authenticates clients.
                server.EnableDegradedMode();
                server.UseAspNetCore().EnableTokenEndpointPassthrough().DisableTransportSecurityRequirement();
                server.AddEventHandler<OpenIddictServerEvents.ValidateTokenRequestContext>(handler =>
                    handler.UseScopedHandler<ClientCredentialsValidator>());
            })
            .AddValidation(validation =>
            {
                validation.UseLocalServer();
                validation.UseAspNetCore();
            });

        services.AddOptions<OpenIddictServerOptions>().Configure<IOptions<TenantryOptions>>((server, tenantry) =>
        {
            var o = tenantry.Value;
            server.Issuer = o.Issuer ?? new Uri($"http://127.0.0.1:{o.Ports.ControlPlane}/");
            server.AccessTokenLifetime = o.AccessTokenLifetime;
            var signing = SigningKeys.LoadOrCreate(o.DataPath, "signing");
            server.SigningCredentials.Add(new SigningCredentials(signing, SecurityAlgorithms.RsaSha256));
            var encryption = SigningKeys.LoadOrCreate(o.DataPath, "encryption");
            server.EncryptionCredentials.Add(new EncryptingCredentials(encryption, SecurityAlgorithms.RsaOAEP, SecurityAlgorithms.Aes256CbcHmacSha512));
        });

        services.AddAuthentication(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminPolicy, policy => policy
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser()
                .RequireAssertion(context => context.User.HasScope(AdminScope)));
    }

    public static IEndpointRouteBuilder MapIdentityApi(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/connect/token", IssueToken).ExcludeFromDescription();
        return routes;
    }

    private static async Task<IResult> IssueToken(HttpContext http, ClientStore clients)
    {
        var request = http.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenIddict server request is missing.");
        if (!request.IsClientCredentialsGrantType() || request.ClientId is null)
        {
            return Forbid(Errors.UnsupportedGrantType, "Only the client_credentials grant is supported.");
        }

        var client = await clients.FindAsync(request.ClientId, http.RequestAborted);
        if (client is null || client.Disabled)
        {
            return Forbid(Errors.InvalidClient, "The client is unknown or disabled.");
        }

        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, client.ClientId);
        identity.SetClaim(Claims.Name, client.DisplayName);
        if (client.TenantId is { } tenantId)
        {
            identity.SetClaim("tenant_id", tenantId.ToString());
        }

        identity.SetScopes(request.GetScopes().Intersect(client.Scopes, StringComparer.Ordinal));
        identity.SetDestinations(_ => [Destinations.AccessToken]);
        return Results.SignIn(new ClaimsPrincipal(identity), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static IResult Forbid(string error, string description) => Results.Forbid(
        new Microsoft.AspNetCore.Authentication.AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }),
        [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
}

/// <summary>Authenticates the client of a token request against the client store.</summary>
internal sealed class ClientCredentialsValidator(ClientStore clients) : IOpenIddictServerHandler<OpenIddictServerEvents.ValidateTokenRequestContext>
{
    public async ValueTask HandleAsync(OpenIddictServerEvents.ValidateTokenRequestContext context)
    {
        if (string.IsNullOrEmpty(context.ClientId) || string.IsNullOrEmpty(context.ClientSecret))
        {
            context.Reject(Errors.InvalidClient, "client_id and client_secret are required.");
            return;
        }

        var client = await clients.FindAsync(context.ClientId, context.CancellationToken);
        if (client is null || client.Disabled || !ClientStore.Verify(client, context.ClientSecret))
        {
            context.Reject(Errors.InvalidClient, "The client credentials are invalid.");
            return;
        }

        var unknown = context.Request.GetScopes().Except(client.Scopes, StringComparer.Ordinal).ToArray();
        if (unknown.Length > 0)
        {
            context.Reject(Errors.InvalidScope, $"The client may not request: {string.Join(' ', unknown)}.");
        }
    }
}
