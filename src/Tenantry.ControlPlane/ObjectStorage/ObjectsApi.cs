using System.Security.Claims;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Identity;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Database;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.ObjectStorage;

public sealed record ObjectResponse(string Key, long Size, DateTimeOffset LastModified);

public sealed record ObjectListResponse(IReadOnlyList<ObjectResponse> Items);

/// <summary>
/// The tenant's objects through the control plane, for the tenant's own principals and operators.
/// A tenant token (a user's, or a machine client's) acts as that principal: its tenant comes from
/// the token, and a token of another tenant than the URL's is refused (403, audited). An operator
/// acts as the tenant's admin. Either way the role policy, the tier's session policy and the
/// guardrails decide, in <see cref="ITenantObjectStorage"/>.
/// </summary>
public static class ObjectsApi
{
    public const long MaxObjectBytes = 16 * 1024 * 1024;

    public static RouteGroupBuilder MapObjectsApi(this RouteGroupBuilder v1)
    {
        var objects = v1.MapGroup("/tenants/{id}/objects").WithTags("Objects");
        objects.MapGet("/", List).WithSummary("The tenant's objects under prefix (relative to tenants/{tenant}/), in key order.");
        objects.MapPut("/{**key}", Put).WithSummary("Store an object (the raw body, at most 16 MiB) under tenants/{tenant}/{key}.");
        objects.MapGet("/{**key}", Get).WithSummary("Read an object.");
        objects.MapDelete("/{**key}", Delete).WithSummary("Delete an object.");
        return v1;
    }

    private static async Task<Results<Ok<ObjectListResponse>, ProblemHttpResult>> List(
        string id, string? prefix, int? limit, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, ITenantObjectStorage storage, TimeProvider time)
    {
        if (limit is < 1 or > TenantObjectStorage.MaxList)
        {
            return ApiError.Validation("limit", $"limit is 1-{TenantObjectStorage.MaxList}.").ToResult();
        }

        return await Run(id, PlatformPolicies.ListObjects, http, db, tenants, time, async (slug, principal) =>
        {
            var items = await storage.ListAsync(principal, ObjectKeys.TenantPrefix(slug) + (prefix ?? ""), limit ?? TenantObjectStorage.MaxList, http.RequestAborted);
            return TypedResults.Ok(new ObjectListResponse([.. items.Select(ToResponse)]));
        });
    }

    private static async Task<Results<Ok<ObjectResponse>, ProblemHttpResult>> Put(string id, string key, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, ITenantObjectStorage storage, TimeProvider time)
    {
        if (http.Request.ContentLength > MaxObjectBytes)
        {
            return new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The object is too large.", $"At most {MaxObjectBytes} bytes.").ToResult();
        }

        return await Run(id, PlatformPolicies.PutObject, http, db, tenants, time, async (slug, principal) =>
        {
            await using var limited = new LimitedStream(http.Request.Body, MaxObjectBytes);
            var stored = await storage.PutAsync(principal, ObjectKeys.TenantPrefix(slug) + key, limited, http.RequestAborted);
            return TypedResults.Ok(ToResponse(stored));
        });
    }

    private static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> Get(string id, string key, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, ITenantObjectStorage storage, TimeProvider time) =>
        await Run<FileStreamHttpResult>(id, PlatformPolicies.GetObject, http, db, tenants, time, async (slug, principal) =>
        {
            var content = await storage.GetAsync(principal, ObjectKeys.TenantPrefix(slug) + key, http.RequestAborted);
            if (content is null)
            {
                return null;
            }

            http.Response.RegisterForDisposeAsync(content);
            return TypedResults.File(content.Stream, "application/octet-stream", lastModified: content.Info.LastModified);
        });

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, string key, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, ITenantObjectStorage storage, TimeProvider time) =>
        await Run<NoContent>(id, PlatformPolicies.DeleteObject, http, db, tenants, time, async (slug, principal) =>
            await storage.DeleteAsync(principal, ObjectKeys.TenantPrefix(slug) + key, http.RequestAborted) ? TypedResults.NoContent() : null);

    /// <summary>
    /// Resolves the URL's tenant and the caller's principal, runs the call with the URL tenant's
    /// slug and turns refusals into problems. Null = 404.
    /// </summary>
    private static async Task<Results<T, ProblemHttpResult>> Run<T>(
        string id, string action, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, TimeProvider time, Func<string, TenantPrincipal, Task<T?>> call)
        where T : class, IResult
    {
        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), http.RequestAborted);
        var own = TokenTenant(http.User);
        if (own is not null && tenant?.Id != own)
        {
            // A tenant token on another tenant's objects (or on a tenant that does not exist):
            // refused the same way, so it learns nothing about which tenants exist.
            await AuditForeignAsync(db, time, http, own.Value, action, id);
            return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "The policies deny this request.", $"This token belongs to another tenant than '{id}'.").ToResult();
        }

        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        if (tenant.Status != TenantStatus.Active)
        {
            return ApiError.Conflict("tenant-not-active", "The tenant is not active.", $"Tenant '{tenant.Slug}' is {tenant.Status.ToString().ToLowerInvariant()}; its objects are reachable while it is active.").ToResult();
        }

        var principal = own is null
            ? new TenantPrincipal(tenant.Id, tenant.Slug, tenant.Tier, "operator:" + http.User.Actor(), TenantPrincipal.AdminRole, TenantPrincipal.OperatorType)
            : TokenPrincipal(http.User, tenant);
        try
        {
            return await call(tenant.Slug, principal) is { } result ? result : ApiError.NotFound("The object").ToResult();
        }
        catch (InvalidObjectKeyException ex)
        {
            return new ApiError(StatusCodes.Status400BadRequest, "invalid-object-key", "The object key is not valid.", ex.Reason).ToResult();
        }
        catch (StorageAccessDeniedException ex)
        {
            var by = ex.Decision.DecidedBy is { } s ? $" by {s.Policy}{(s.Sid is null ? "" : "/" + s.Sid)}" : $": no {ex.Decision.MissingAllow?.ToString().ToLowerInvariant()} policy allows it";
            return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "The policies deny this request.", $"{ex.Decision.Decision} of {ex.Action} on {ex.Resource}{by}.").ToResult();
        }
        catch (ObjectConflictException ex)
        {
            return ApiError.Conflict("object-conflict", "The object conflicts with another.", ex.Message).ToResult();
        }
        catch (Exception ex) when (ex is PayloadTooLargeException || (ex is BadHttpRequestException bad && bad.StatusCode == StatusCodes.Status413PayloadTooLarge))
        {
            return new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The object is too large.", $"At most {MaxObjectBytes} bytes.").ToResult();
        }
        catch (StorageQuotaExceededException ex)
        {
            return new ApiError(StatusCodes.Status413PayloadTooLarge, "storage-quota-exceeded", "The tenant's storage quota is used up.",
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"The plan allows {ex.Limit} bytes of storage and {ex.Used} are in use; delete objects or upgrade the plan.")).ToResult();
        }
    }

    /// <summary>The tenant of a tenant token; null for an operator token (no tenant claim).</summary>
    private static Guid? TokenTenant(ClaimsPrincipal user)
    {
        if (user.FindFirst(IdentityApi.TenantIdClaim) is not { } claim)
        {
            return null;
        }

        // A tenant claim that is not a tenant id never matches a tenant: refused as another tenant's.
        return Guid.TryParse(claim.Value, out var tenantId) ? tenantId : Guid.Empty;
    }

    /// <summary>
    /// The token's principal, with the tenant's current tier (a tier change applies at once, not
    /// at the token's expiry). A machine client acts with the admin role policy: it is the
    /// tenant's service account, created by the operator.
    /// </summary>
    private static TenantPrincipal TokenPrincipal(ClaimsPrincipal user, Tenant tenant)
    {
        var role = user.FindFirst(Claims.Role)?.Value;
        var machine = role == TenantRoles.Machine;
        var name = machine ? user.Actor() : user.FindFirst(Claims.Email)?.Value ?? user.Actor();
        return new TenantPrincipal(
            tenant.Id, tenant.Slug, tenant.Tier, name,
            machine || role == TenantRoles.Admin ? TenantPrincipal.AdminRole : TenantPrincipal.MemberRole,
            machine ? TenantPrincipal.ClientType : TenantPrincipal.UserType);
    }

    private static Task AuditForeignAsync(IControlPlaneDatabase db, TimeProvider time, HttpContext http, Guid tenantId, string action, string target) =>
        db.WriteAsync(
            (c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(
                http,
                tenantId,
                action,
                new JsonObject
                {
                    ["targetTenant"] = target.Length > 100 ? target[..100] + "…" : target,
                    ["reason"] = "The token belongs to another tenant.",
                    ["path"] = http.Request.Path.Value is { Length: > 300 } p ? p[..300] + "…" : http.Request.Path.Value,
                },
                time.GetUtcNow(),
                outcome: "denied")),
            http.RequestAborted);

    private static ObjectResponse ToResponse(StoredObject o) => new(o.Key, o.Size, o.LastModified);
}

internal sealed class PayloadTooLargeException : Exception
{
    public PayloadTooLargeException()
        : base("The body is over the limit.")
    {
    }
}

/// <summary>Reads at most a number of bytes, for bodies sent without Content-Length.</summary>
internal sealed class LimitedStream(Stream inner, long limit) : ReadThroughStream(inner)
{
    protected override ValueTask CheckAsync(long before, int read, CancellationToken cancellationToken) =>
        before + read > limit ? throw new PayloadTooLargeException() : ValueTask.CompletedTask;
}
