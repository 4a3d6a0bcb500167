using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Storage;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane.Objects;

public sealed record ObjectResponse(string Key, long Size, DateTimeOffset LastModified);

public sealed record ObjectListResponse(IReadOnlyList<ObjectResponse> Items);

/// <summary>
/// The tenant's objects through the control plane. The operator acts as the tenant's admin
/// principal, so the tenant's session policy and the guardrails apply exactly as to the tenant.
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
        string id, string? prefix, int? limit, HttpContext http, IControlPlaneDatabase db, ITenantStorage storage)
    {
        if (limit is < 1 or > TenantStorage.MaxList)
        {
            return ApiError.Validation("limit", $"limit is 1-{TenantStorage.MaxList}.").ToResult();
        }

        return await Run(id, http, db, async principal =>
        {
            var items = await storage.ListAsync(principal, ObjectKeys.TenantPrefix(principal.Slug) + (prefix ?? ""), limit ?? TenantStorage.MaxList, http.RequestAborted);
            return TypedResults.Ok(new ObjectListResponse([.. items.Select(ToResponse)]));
        });
    }

    private static async Task<Results<Ok<ObjectResponse>, ProblemHttpResult>> Put(string id, string key, HttpContext http, IControlPlaneDatabase db, ITenantStorage storage)
    {
        if (http.Request.ContentLength > MaxObjectBytes)
        {
            return new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The object is too large.", $"At most {MaxObjectBytes} bytes.").ToResult();
        }

        return await Run(id, http, db, async principal =>
        {
            await using var limited = new LimitedStream(http.Request.Body, MaxObjectBytes);
            var stored = await storage.PutAsync(principal, ObjectKeys.TenantPrefix(principal.Slug) + key, limited, http.RequestAborted);
            return TypedResults.Ok(ToResponse(stored));
        });
    }

    private static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> Get(string id, string key, HttpContext http, IControlPlaneDatabase db, ITenantStorage storage) =>
        await Run<FileStreamHttpResult>(id, http, db, async principal =>
        {
            var content = await storage.GetAsync(principal, ObjectKeys.TenantPrefix(principal.Slug) + key, http.RequestAborted);
            if (content is null)
            {
                return null;
            }

            http.Response.RegisterForDisposeAsync(content);
            return TypedResults.File(content.Stream, "application/octet-stream", lastModified: content.Info.LastModified);
        });

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, string key, HttpContext http, IControlPlaneDatabase db, ITenantStorage storage) =>
        await Run<NoContent>(id, http, db, async principal =>
            await storage.DeleteAsync(principal, ObjectKeys.TenantPrefix(principal.Slug) + key, http.RequestAborted) ? TypedResults.NoContent() : null);

    /// <summary>Resolves the tenant, runs the call as its admin principal and turns refusals into problems. Null = 404.</summary>
    private static async Task<Results<T, ProblemHttpResult>> Run<T>(string id, HttpContext http, IControlPlaneDatabase db, Func<TenantPrincipal, Task<T?>> call)
        where T : class, IResult
    {
        var tenant = await db.ReadAsync(c => TenantStore.FindAsync(c, null, id), http.RequestAborted);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        if (tenant.Status != TenantStatus.Active)
        {
            return ApiError.Conflict("tenant-not-active", "The tenant is not active.", $"Tenant '{tenant.Slug}' is {tenant.Status.ToString().ToLowerInvariant()}; its objects are reachable while it is active.").ToResult();
        }

        var principal = new TenantPrincipal(tenant.Id, tenant.Slug, tenant.Tier, "operator:" + http.User.Actor(), TenantPrincipal.AdminRole, TenantPrincipal.OperatorType);
        try
        {
            return await call(principal) is { } result ? result : ApiError.NotFound("The object").ToResult();
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
        catch (PayloadTooLargeException)
        {
            return new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The object is too large.", $"At most {MaxObjectBytes} bytes.").ToResult();
        }
    }

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
internal sealed class LimitedStream(Stream inner, long limit) : Stream
{
    private long _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Count(await inner.ReadAsync(buffer, cancellationToken));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int Count(int read)
    {
        _read += read;
        return _read > limit ? throw new PayloadTooLargeException() : read;
    }
}
