using System.Collections.Concurrent;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// The control plane's access-token check, remembered per token until it expires. An API call's RS256
/// signature check is most of what authenticating it costs, and a client sends the same token for an hour
/// (the usage ingest: one per batch, thousands a second). OpenIddict validation runs here without token
/// storage, so a token's validity rests on its signature, issuer, type and lifetime alone:
/// <list type="bullet">
/// <item>the key is the token and the parameters that differ between checks (token types, issuers,
/// audiences), so a token checked as one type is never taken as another;</item>
/// <item>only valid results are kept (a bad token is checked every time), and each hit gets a copy of the
/// identity, since OpenIddict adds claims to it per request;</item>
/// <item>a hit past the token's expiry is dropped and checked again (and refused).</item>
/// </list>
/// OpenIddict's later checks (expiry, audiences, presenters; token entries if storage is ever enabled) still
/// run on every request.
/// </summary>
internal sealed class AccessTokenCache(TimeProvider time) : JsonWebTokenHandler
{
    private const int MaxEntries = 10_000;

    private readonly ConcurrentDictionary<(string Token, string Checks), (TokenValidationResult Result, DateTime ValidTo)> _valid = new();

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        ArgumentNullException.ThrowIfNull(validationParameters);
        if (token is null)
        {
            return await base.ValidateTokenAsync(token, validationParameters);
        }

        var key = (token, Checks(validationParameters));
        var now = time.GetUtcNow().UtcDateTime;
        if (_valid.TryGetValue(key, out var hit))
        {
            if (hit.ValidTo > now)
            {
                return Copy(hit.Result);
            }

            _valid.TryRemove(key, out _);
        }

        var result = await base.ValidateTokenAsync(token, validationParameters);
        if (result.IsValid && result.SecurityToken is { } validated && validated.ValidTo > now)
        {
            if (_valid.Count >= MaxEntries)
            {
                _valid.Clear();
            }

            _valid[key] = (Copy(result), validated.ValidTo);
        }

        return result;
    }

    private static string Checks(TokenValidationParameters p) => string.Join('\n',
        string.Join(' ', p.ValidTypes ?? []), p.ValidIssuer, string.Join(' ', p.ValidIssuers ?? []),
        p.ValidAudience, string.Join(' ', p.ValidAudiences ?? []), p.ValidateIssuer, p.ValidateAudience, p.ValidateLifetime);

    private static TokenValidationResult Copy(TokenValidationResult r) => new()
    {
        IsValid = true,
        SecurityToken = r.SecurityToken,
        ClaimsIdentity = r.ClaimsIdentity.Clone(),
        Issuer = r.Issuer,
        TokenType = r.TokenType,
        TokenContext = r.TokenContext,
    };
}
