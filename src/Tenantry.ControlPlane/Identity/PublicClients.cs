using System.Net;
using Microsoft.Extensions.Options;
using OpenIddict.Server;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Identity;

/// <summary>Tenant-user login settings, under <c>Tenantry:Identity</c>.</summary>
public sealed class TenantLoginOptions
{
    public const string Section = "Tenantry:Identity";

    /// <summary>The CLI's client: any loopback port (RFC 8252 §7.3), path <c>/callback</c>.</summary>
    public const string CliClientId = "tenantry-cli";

    /// <summary>
    /// Public clients (SPAs, CLIs) that may use the authorization code flow with PKCE, by client id.
    /// They have no secret; a code goes only to one of the client's redirect URIs.
    /// </summary>
    public Dictionary<string, PublicClientOptions> PublicClients { get; set; } = new(StringComparer.Ordinal)
    {
        [CliClientId] = new() { RedirectUris = ["http://127.0.0.1/callback"] },
    };

    /// <summary>How long an authorization code may wait for its exchange (single use in any case).</summary>
    public TimeSpan AuthorizationCodeLifetime { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long an invitation link (<c>/invite/{token}</c>, in welcome and invitation mails) stays usable; it works once in any case.</summary>
    public TimeSpan InvitationLifetime { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>A public client's registration.</summary>
public sealed class PublicClientOptions
{
    /// <summary>
    /// Exact redirect URIs. An <c>http://127.0.0.1/…</c> or <c>http://[::1]/…</c> entry accepts any port
    /// with the same path, for native apps that listen on an ephemeral loopback port (RFC 8252 §7.3).
    /// </summary>
    public List<string> RedirectUris { get; set; } = [];

    public bool Allows(string redirectUri)
    {
        if (!Uri.TryCreate(redirectUri, UriKind.Absolute, out var requested))
        {
            return false;
        }

        foreach (var registered in RedirectUris)
        {
            if (string.Equals(registered, redirectUri, StringComparison.Ordinal))
            {
                return true;
            }

            if (Uri.TryCreate(registered, UriKind.Absolute, out var r) && IsLoopbackLiteral(r) && IsLoopbackLiteral(requested)
                && r.Host == requested.Host
                && string.Equals(r.PathAndQuery, requested.PathAndQuery, StringComparison.Ordinal)
                && string.IsNullOrEmpty(requested.UserInfo) && string.IsNullOrEmpty(requested.Fragment))
            {
                return true;
            }
        }

        return false;
    }

    // RFC 8252 §8.3: loopback IP literals over plain http, not "localhost".
    private static bool IsLoopbackLiteral(Uri uri) =>
        uri.Scheme == Uri.UriSchemeHttp && uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6
        && IPAddress.TryParse(uri.IdnHost, out var address) && IPAddress.IsLoopback(address);
}

internal sealed class TenantLoginOptionsValidator : IValidateOptions<TenantLoginOptions>
{
    public ValidateOptionsResult Validate(string? name, TenantLoginOptions options)
    {
        var errors = new List<string>();
        if (options.AuthorizationCodeLifetime < TimeSpan.FromSeconds(10) || options.AuthorizationCodeLifetime > TimeSpan.FromMinutes(10))
        {
            errors.Add($"{TenantLoginOptions.Section}:AuthorizationCodeLifetime must be 00:00:10-00:10:00.");
        }

        if (options.InvitationLifetime < TimeSpan.FromMinutes(5) || options.InvitationLifetime > TimeSpan.FromDays(30))
        {
            errors.Add($"{TenantLoginOptions.Section}:InvitationLifetime must be 00:05:00-30.00:00:00.");
        }

        foreach (var (clientId, client) in options.PublicClients)
        {
            foreach (var uri in client.RedirectUris)
            {
                if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || !string.IsNullOrEmpty(parsed.Fragment)
                    || (parsed.Scheme != Uri.UriSchemeHttps && !(parsed.Scheme == Uri.UriSchemeHttp && parsed.IsLoopback)))
                {
                    errors.Add($"{TenantLoginOptions.Section}:PublicClients:{clientId}:RedirectUris: '{uri}' must be an absolute https URI (or http on loopback) without a fragment.");
                }
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// Degraded mode leaves client checks at the authorization endpoint to us: the client must be a
/// registered public client and the redirect URI one of its own. Any rejection here is shown to the
/// user, never sent to the (unverified) redirect URI.
/// </summary>
internal sealed class PublicClientRedirectValidator(IOptions<TenantLoginOptions> options)
    : IOpenIddictServerHandler<OpenIddictServerEvents.ValidateAuthorizationRequestContext>
{
    public ValueTask HandleAsync(OpenIddictServerEvents.ValidateAuthorizationRequestContext context)
    {
        if (string.IsNullOrEmpty(context.ClientId) || !options.Value.PublicClients.TryGetValue(context.ClientId, out var client))
        {
            // Shown to the user (RFC 6749 §4.1.2.1: never redirect for an unknown client).
            context.Reject(Errors.InvalidRequest, "The client_id is not a registered public client.");
        }
        else if (string.IsNullOrEmpty(context.RedirectUri) || !client.Allows(context.RedirectUri))
        {
            context.Reject(Errors.InvalidRequest, "The redirect_uri is not registered for this client.");
        }

        return default;
    }
}
