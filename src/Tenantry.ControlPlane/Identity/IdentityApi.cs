using System.Security.Claims;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;
using OpenIddict.Validation;
using OpenIddict.Validation.AspNetCore;
using Tenantry.ControlPlane.Database;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// The OIDC issuer (OpenIddict): client credentials and the password grant at <c>/connect/token</c>, the
/// authorization code flow with PKCE (S256) at <c>/connect/authorize</c> for public clients, JWT access tokens.
/// </summary>
public static class IdentityApi
{
    public const string AdminScope = "tenantry:admin";
    public const string AdminPolicy = "tenantry-admin";

    /// <summary>An operator token, or a token of a tenant principal (a user or machine client, with a <c>tenant_id</c> claim).</summary>
    public const string TenantOrAdminPolicy = "tenantry-tenant-or-admin";
    public const string OperatorClientId = "operator";

    /// <summary>Reading the routing table only: what a gateway replica needs, and nothing else.</summary>
    public const string RoutesScope = "tenantry:routes";

    /// <summary>An operator token, or a gateway replica's (<see cref="RoutesScope"/>).</summary>
    public const string RoutesPolicy = "tenantry-routes";

    /// <summary>The bootstrap client of gateway replicas (scope <see cref="RoutesScope"/> only).</summary>
    public const string GatewayClientId = "gateway";
    public const string TenantIdClaim = "tenant_id";
    public const string TenantSlugClaim = "tenant_slug";
    public const string TierClaim = "tier";

    /// <summary>Scopes a tenant user may ask for at login.</summary>
    private static readonly string[] UserScopes = [Scopes.OpenId, Scopes.Email, Scopes.Roles, Scopes.Profile];

    internal static void AddTenantryIdentity(this IServiceCollection services)
    {
        services.AddOpenIddict()
            .AddServer(server =>
            {
                server.SetTokenEndpointUris("connect/token");
                server.SetAuthorizationEndpointUris("connect/authorize");
                server.SetConfigurationEndpointUris(".well-known/openid-configuration");
                server.SetJsonWebKeySetEndpointUris(".well-known/jwks");
                server.AllowClientCredentialsFlow();
                // The password grant stays for scripts and tests (no client secret); browsers and CLIs use the code flow below.
                server.AllowPasswordFlow();
                // SPAs and CLIs: the authorization code flow with PKCE, S256 only (plain is refused), single-use codes.
                server.AllowAuthorizationCodeFlow().RequireProofKeyForCodeExchange();
                server.Configure(o =>
                {
                    o.CodeChallengeMethods.Clear();
                    o.CodeChallengeMethods.Add(CodeChallengeMethods.Sha256);
                });
                server.AcceptAnonymousClients();
                server.RegisterScopes(AdminScope, RoutesScope, Scopes.OpenId, Scopes.Email, Scopes.Roles, Scopes.Profile);
                server.RegisterClaims(Claims.Subject, Claims.Email, Claims.Role, TenantIdClaim, TierClaim, TenantSlugClaim);
                server.DisableAccessTokenEncryption();
                // Clients live in Tenantry's own store, so OpenIddict runs without its EF stores
                // and the handler below authenticates clients.
                server.EnableDegradedMode();
                server.UseAspNetCore().EnableTokenEndpointPassthrough().EnableAuthorizationEndpointPassthrough().DisableTransportSecurityRequirement();
                server.AddEventHandler<OpenIddictServerEvents.ValidateTokenRequestContext>(handler =>
                    handler.UseScopedHandler<ClientCredentialsValidator>());
                server.AddEventHandler<OpenIddictServerEvents.ValidateAuthorizationRequestContext>(handler =>
                    handler.UseSingletonHandler<PublicClientRedirectValidator>());
            })
            .AddValidation(validation =>
            {
                validation.UseLocalServer();
                validation.UseAspNetCore();
            });

        services.AddOptions<TenantLoginOptions>().BindConfiguration(TenantLoginOptions.Section).ValidateSettings(TenantLoginOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TenantLoginOptions>, TenantLoginOptionsValidator>());
        services.AddOptions<LockoutOptions>().BindConfiguration(LockoutOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LockoutOptions>, LockoutOptionsValidator>());
        services.TryAddSingleton<TenantSignIn>();
        services.AddAntiforgery();
        services.AddOptions<OpenIddictServerOptions>().Configure<IOptions<TenantryOptions>, IOptions<TenantLoginOptions>, Keys.ITokenKeys>((server, tenantry, login, keys) =>
        {
            var o = tenantry.Value;
            server.AuthorizationCodeLifetime = login.Value.AuthorizationCodeLifetime;
            server.Issuer = o.Issuer ?? new Uri($"http://127.0.0.1:{o.Ports.ControlPlane}/");
            server.AccessTokenLifetime = o.AccessTokenLifetime;
            // The current keys first: OpenIddict signs and encrypts with the first; the retiring ones after it still
            // validate (and are published in the JWKS) until the tokens they signed have expired.
            server.SigningCredentials.Add(new SigningCredentials(keys.Signing, SecurityAlgorithms.RsaSha256));
            foreach (var retiring in keys.RetiringSigning)
            {
                server.SigningCredentials.Add(new SigningCredentials(retiring, SecurityAlgorithms.RsaSha256));
            }

            server.EncryptionCredentials.Add(new EncryptingCredentials(keys.Encryption, SecurityAlgorithms.RsaOAEP, SecurityAlgorithms.Aes256CbcHmacSha512));
            foreach (var retiring in keys.RetiringEncryption)
            {
                server.EncryptionCredentials.Add(new EncryptingCredentials(retiring, SecurityAlgorithms.RsaOAEP, SecurityAlgorithms.Aes256CbcHmacSha512));
            }
        });

        services.AddOptions<OpenIddictValidationOptions>().PostConfigure<TimeProvider>((validation, time) => validation.JsonWebTokenHandler = new AccessTokenCache(time));
        services.AddAuthentication(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme);
        services.AddAuthorizationBuilder()
            .AddPolicy(AdminPolicy, policy => policy
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser()
                .RequireAssertion(context => context.User.HasScope(AdminScope)))
            .AddPolicy(RoutesPolicy, policy => policy
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser()
                .RequireAssertion(context => context.User.HasScope(AdminScope) || context.User.HasScope(RoutesScope)))
            .AddPolicy(TenantOrAdminPolicy, policy => policy
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser()
                .RequireAssertion(context => context.User.HasScope(AdminScope) || context.User.HasClaim(c => c.Type == TenantIdClaim)));
    }

    public static IEndpointRouteBuilder MapIdentityApi(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/connect/token", IssueToken).ExcludeFromDescription();
        routes.MapMethods("/connect/authorize", [HttpMethods.Get, HttpMethods.Post], LoginPage.AuthorizeAsync).ExcludeFromDescription();
        routes.MapMethods("/invite/{token}", [HttpMethods.Get, HttpMethods.Post], InvitePage.HandleAsync).ExcludeFromDescription().DisableAntiforgery();
        return routes;
    }

    private static async Task<IResult> IssueToken(HttpContext http, ClientStore clients, TenantUserStore users, TenantSignIn signIn, IControlPlaneDatabase db, ITenantRegistry tenants, Billing.Usage.BuiltInUsageBuffer usage, TimeProvider time)
    {
        var request = http.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenIddict server request is missing.");
        if (request.IsPasswordGrantType())
        {
            return await IssueUserToken(http, request, signIn, usage, time);
        }

        if (request.IsAuthorizationCodeGrantType())
        {
            return await RedeemCode(http, request, users, db, time);
        }

        if (!request.IsClientCredentialsGrantType() || request.ClientId is null)
        {
            return Forbid(Errors.UnsupportedGrantType, "Supported grants: client_credentials, password, authorization_code.");
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
            // A tenant's machine client gets tokens only while its tenant is active.
            var tenant = await db.ReadAsync(c => tenants.GetAsync(c, null, tenantId), http.RequestAborted);
            if (tenant is null || tenant.Status != TenantStatus.Active)
            {
                return Forbid(Errors.InvalidClient, "The client's tenant is not active.");
            }

            AddTenantClaims(identity, tenant);
            identity.SetClaims(Claims.Role, [TenantRoles.Machine]);
        }

        identity.SetScopes(request.GetScopes().Intersect(client.Scopes, StringComparer.Ordinal));
        identity.SetDestinations(_ => [Destinations.AccessToken]);
        return Results.SignIn(new ClaimsPrincipal(identity), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static async Task<IResult> IssueUserToken(HttpContext http, OpenIddictRequest request, TenantSignIn signIn, Billing.Usage.BuiltInUsageBuffer usage, TimeProvider time)
    {
        var tenantParameter = (string?)request["tenant"];
        var attempt = await signIn.SignInAsync(
            http, string.IsNullOrEmpty(tenantParameter) ? null : tenantParameter, TenantUserStore.NormalizeEmail(request.Username), request.Password ?? "", "password-grant");
        if (attempt.RetryAfter is { } wait)
        {
            return Throttled(http, wait);
        }

        if (!attempt.Succeeded)
        {
            // A locked account gets the same answer as a wrong password: the response does not tell which accounts exist or are locked.
            return Forbid(Errors.InvalidGrant, "The user name or password is not valid, or the tenant is not active.");
        }

        var (user, tenant) = (attempt.Result!.User!, attempt.Result.Tenant!);
        RecordLogin(usage, time, user, tenant);
        return Results.SignIn(new ClaimsPrincipal(UserIdentity(user, tenant, request.GetScopes())), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    /// <summary>The client address has used up its failed sign-ins for the window: 429 with Retry-After, as problem details.</summary>
    internal static IResult Throttled(HttpContext http, TimeSpan wait)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
        http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new Http.ApiError(
            StatusCodes.Status429TooManyRequests, "sign-in-throttled", "Too many failed sign-ins from this address.",
            $"Try again in {seconds} s.").ToResult();
    }

    /// <summary>
    /// OpenIddict has checked the code (signature, lifetime, client, redirect URI, code_verifier). Degraded
    /// mode keeps no token store, so single use is enforced here; and the user and tenant are looked up
    /// again, as either may have been disabled or suspended since the code was issued.
    /// </summary>
    private static async Task<IResult> RedeemCode(HttpContext http, OpenIddictRequest request, TenantUserStore users, IControlPlaneDatabase db, TimeProvider time)
    {
        var code = (await http.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme)).Principal;
        if (code is null || !await AuthorizationCodes.TryRedeemAsync(db, time, request.Code!, http.RequestAborted))
        {
            return Forbid(Errors.InvalidGrant, "The authorization code is invalid or was already used.");
        }

        var found = Guid.TryParse(code.GetClaim(TenantIdClaim), out var tenantId) && code.GetClaim(Claims.Email) is { } email
            ? await users.FindActiveAsync(tenantId, email, http.RequestAborted)
            : null;
        if (found is not { } match)
        {
            return Forbid(Errors.InvalidGrant, "The user or the tenant is no longer active.");
        }

        return Results.SignIn(new ClaimsPrincipal(UserIdentity(match.User, match.Tenant, code.GetScopes())), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    /// <summary>A tenant user's token claims, whichever way the user logged in.</summary>
    internal static ClaimsIdentity UserIdentity(TenantUser user, Tenant tenant, IEnumerable<string> scopes)
    {
        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, $"{tenant.Id}:{user.Email}");
        identity.SetClaim(Claims.Name, user.Email);
        identity.SetClaim(Claims.Email, user.Email);
        AddTenantClaims(identity, tenant);
        identity.SetClaims(Claims.Role, [user.Role]);
        identity.SetScopes(scopes.Intersect(UserScopes, StringComparer.Ordinal));
        identity.SetDestinations(_ => [Destinations.AccessToken]);
        return identity;
    }

    /// <summary>Metering: a user who logs in is active (unique_count over userId); one event per user and day.</summary>
    internal static void RecordLogin(Billing.Usage.BuiltInUsageBuffer usage, TimeProvider time, TenantUser user, Tenant tenant)
    {
        var now = time.GetUtcNow();
        usage.Add(new Billing.Usage.UsageEvent(
            "tenantry/identity", $"{tenant.Id:N}:{user.Email}:{now:yyyy-MM-dd}", tenant.Id, "active_users", now,
            new System.Text.Json.Nodes.JsonObject { ["userId"] = user.Email }.ToJsonString()));
    }

    private static void AddTenantClaims(ClaimsIdentity identity, Tenant tenant)
    {
        identity.SetClaim(TenantIdClaim, tenant.Id.ToString());
        identity.SetClaim(TenantSlugClaim, tenant.Slug);
        identity.SetClaim(TierClaim, tenant.Tier);
    }

    private static IResult Forbid(string error, string description) => Results.Forbid(
        new Microsoft.AspNetCore.Authentication.AuthenticationProperties(new Dictionary<string, string?>
        {
            [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
            [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
        }),
        [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
}

/// <summary>Authenticates the client of a token request against the client store (public clients against their registration).</summary>
internal sealed class ClientCredentialsValidator(ClientStore clients, IOptions<TenantLoginOptions> login) : IOpenIddictServerHandler<OpenIddictServerEvents.ValidateTokenRequestContext>
{
    public async ValueTask HandleAsync(OpenIddictServerEvents.ValidateTokenRequestContext context)
    {
        if (context.Request.IsAuthorizationCodeGrantType())
        {
            // A public client has no secret: the code_verifier (checked by OpenIddict against the code) proves the caller.
            if (string.IsNullOrEmpty(context.ClientId) || !login.Value.PublicClients.ContainsKey(context.ClientId))
            {
                context.Reject(Errors.InvalidClient, "The client_id is not a registered public client.");
            }
            else if (!string.IsNullOrEmpty(context.ClientSecret))
            {
                context.Reject(Errors.InvalidClient, "A public client sends no client_secret.");
            }

            return;
        }

        if (context.Request.IsPasswordGrantType())
        {
            // Public clients: the user's password is checked when the token is issued.
            if (string.IsNullOrEmpty(context.Request.Username) || string.IsNullOrEmpty(context.Request.Password))
            {
                context.Reject(Errors.InvalidRequest, "username and password are required.");
            }

            return;
        }

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
