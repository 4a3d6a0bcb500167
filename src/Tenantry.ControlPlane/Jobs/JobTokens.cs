using System.Security.Claims;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Server;
using Tenantry.ControlPlane.Identity;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// A worker's credentials for one job: an access token of the job's tenant, signed by the
/// control plane's issuer like every other, that lives no longer than the job's lease. It acts as
/// the tenant's service account (the machine role), so object storage applies the tenant's role
/// policy, its tier's session policy and the guardrails to it, and every tenant-scoped call
/// refuses it on another tenant: the tenant comes from the token, never from the worker.
/// </summary>
internal sealed class JobTokens(IOptionsMonitor<OpenIddictServerOptions> server, TimeProvider time)
{
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };

    public string Issue(Tenant tenant, Job job, DateTimeOffset expires)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(job);
        var options = server.CurrentValue;
        var now = time.GetUtcNow();
        var claims = new Dictionary<string, object>
        {
            [Claims.Subject] = $"job:{job.Id}",
            [Claims.Name] = $"job:{job.Id}",
            [Claims.Role] = TenantRoles.Machine,
            [IdentityApi.TenantIdClaim] = tenant.Id.ToString(),
            [IdentityApi.TenantSlugClaim] = tenant.Slug,
            [IdentityApi.TierClaim] = tenant.Tier,
            [Claims.JwtId] = Guid.NewGuid().ToString(),
            ["job_id"] = job.Id.ToString(),
        };
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            TokenType = JsonWebTokenTypes.AccessToken,
            Issuer = options.Issuer?.AbsoluteUri,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = expires.UtcDateTime,
            Claims = claims,
            SigningCredentials = options.SigningCredentials[0],
        });
    }
}
