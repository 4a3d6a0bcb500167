using System.Collections.Concurrent;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.Gateway;

/// <summary>
/// JWT validation that remembers tokens it has already validated, until they expire: a client
/// sends the same token on every call, and checking an RS256 signature each time is most of the
/// gateway's own CPU. Only successful results are kept (a bad token is checked every time), keyed
/// by the exact token text; the tenant's status is still checked on every request from the
/// routing table, so a cached token of a suspended tenant is refused all the same.
/// </summary>
internal sealed class CachingTokenHandler(TimeProvider time) : JsonWebTokenHandler
{
    private const int MaxEntries = 10_000;
    private readonly ConcurrentDictionary<string, (TokenValidationResult Result, DateTime ValidTo)> _valid = new(StringComparer.Ordinal);

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        var now = time.GetUtcNow().UtcDateTime;
        if (token is not null && _valid.TryGetValue(token, out var hit))
        {
            if (hit.ValidTo > now)
            {
                return hit.Result;
            }

            _valid.TryRemove(token, out _);
        }

        var result = await base.ValidateTokenAsync(token, validationParameters);
        if (result.IsValid && token is not null && result.SecurityToken is { } validated && validated.ValidTo > now)
        {
            if (_valid.Count >= MaxEntries)
            {
                _valid.Clear();
            }

            _valid[token] = (result, validated.ValidTo);
        }

        return result;
    }
}
