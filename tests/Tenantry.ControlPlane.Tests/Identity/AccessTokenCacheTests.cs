using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Tenantry.ControlPlane.Identity;

namespace Tenantry.ControlPlane.Tests.Identity;

/// <summary>The remembered access-token check must never accept what a fresh check refuses.</summary>
public sealed class AccessTokenCacheTests : IDisposable
{
    private const string Issuer = "http://127.0.0.1:5080/";
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly ManualClock _clock = new(DateTimeOffset.UtcNow);

    public void Dispose() => _rsa.Dispose();

    [Fact]
    public async Task A_remembered_token_gets_its_own_identity_each_time()
    {
        var cache = new AccessTokenCache(_clock);
        var token = Token("at+jwt", TimeSpan.FromHours(1));
        var first = await cache.ValidateTokenAsync(token, Parameters("at+jwt"));
        var second = await cache.ValidateTokenAsync(token, Parameters("at+jwt"));
        Assert.True(first.IsValid);
        Assert.True(second.IsValid);
        second.ClaimsIdentity.AddClaim(new Claim("added", "by one request"));
        var third = await cache.ValidateTokenAsync(token, Parameters("at+jwt"));
        Assert.NotSame(second.ClaimsIdentity, third.ClaimsIdentity);
        Assert.Null(third.ClaimsIdentity.FindFirst("added"));
        Assert.Equal("tenant-a", third.ClaimsIdentity.FindFirst("sub")?.Value);
    }

    [Fact]
    public async Task A_token_remembered_as_one_type_is_not_taken_as_another()
    {
        var cache = new AccessTokenCache(_clock);
        var token = Token("at+jwt", TimeSpan.FromHours(1));
        Assert.True((await cache.ValidateTokenAsync(token, Parameters("at+jwt"))).IsValid);
        Assert.False((await cache.ValidateTokenAsync(token, Parameters("JWT"))).IsValid);
        var otherIssuer = Parameters("at+jwt");
        otherIssuer.ValidIssuer = "http://elsewhere.test/";
        Assert.False((await cache.ValidateTokenAsync(token, otherIssuer)).IsValid);
    }

    [Fact]
    public async Task A_remembered_token_is_refused_once_it_expires()
    {
        var cache = new AccessTokenCache(_clock);
        var token = Token("at+jwt", TimeSpan.FromMinutes(5));
        Assert.True((await cache.ValidateTokenAsync(token, Parameters("at+jwt"))).IsValid);
        _clock.Now += TimeSpan.FromMinutes(6);
        Assert.False((await cache.ValidateTokenAsync(token, Parameters("at+jwt"))).IsValid);
    }

    [Fact]
    public async Task A_forged_or_altered_token_is_refused_even_after_the_real_one_was_remembered()
    {
        var cache = new AccessTokenCache(_clock);
        var token = Token("at+jwt", TimeSpan.FromHours(1));
        Assert.True((await cache.ValidateTokenAsync(token, Parameters("at+jwt"))).IsValid);
        var parts = token.Split('.');
        var altered = parts[0] + "." + Base64UrlEncoder.Encode("{\"sub\":\"tenant-b\",\"iss\":\"" + Issuer + "\"}") + "." + parts[2];
        Assert.False((await cache.ValidateTokenAsync(altered, Parameters("at+jwt"))).IsValid);
        using var other = RSA.Create(2048);
        Assert.False((await cache.ValidateTokenAsync(Token("at+jwt", TimeSpan.FromHours(1), other), Parameters("at+jwt"))).IsValid);
    }

    private TokenValidationParameters Parameters(string type) => new()
    {
        ValidIssuer = Issuer,
        ValidateAudience = false,
        ValidTypes = [type],
        IssuerSigningKey = new RsaSecurityKey(_rsa),
        // Lifetime by the same clock as the cache's.
        LifetimeValidator = (_, expires, _, _) => expires > _clock.GetUtcNow().UtcDateTime,
    };

    private string Token(string type, TimeSpan lifetime, RSA? key = null) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Issuer = Issuer,
        TokenType = type,
        Subject = new ClaimsIdentity([new Claim("sub", "tenant-a")]),
        IssuedAt = _clock.GetUtcNow().UtcDateTime,
        NotBefore = _clock.GetUtcNow().UtcDateTime,
        Expires = (_clock.GetUtcNow() + lifetime).UtcDateTime,
        SigningCredentials = new SigningCredentials(new RsaSecurityKey(key ?? _rsa), SecurityAlgorithms.RsaSha256),
    });

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
