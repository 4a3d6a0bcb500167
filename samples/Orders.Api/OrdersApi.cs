using System.Data.Common;
using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using Tenantry;
using Tenantry.AspNetCore;

namespace Orders.Api;

public sealed record CreateOrderRequest(string? Number, decimal? Amount, string? Note);

public sealed record OrderResponse(Guid Id, string Number, decimal Amount, string? Note, string CreatedBy, DateTimeOffset CreatedAt);

public sealed record OrderList(IReadOnlyList<OrderResponse> Items);

public sealed record AttachmentResponse(Guid OrderId, string Name, long Bytes);

/// <summary>Who served the request: lets operators (and tests) see which instance a tenant's traffic reaches.</summary>
public sealed record InstanceResponse(int ProcessId, string Mode, Guid TenantId, string Slug, string Tier);

/// <summary>
/// The orders endpoints. Every query is plain SQL that runs unchanged on PostgreSQL and SQLite (values
/// go in as parameters: Guid and DateTimeOffset bind as uuid/timestamptz or as text); Tenantry.Data keeps
/// it inside the caller's tenant.
/// </summary>
public static class OrdersApi
{
    public const long MaxAttachmentBytes = 10 * 1024 * 1024;

    /// <summary>
    /// How much of a refused upload's remaining body is read (and discarded) before the 413 is sent: a proxy in
    /// front (the gateway, over HTTP/1.1) reads the answer only once it has sent the whole body, and reports a
    /// connection closed under it as 502. Past this, the connection is closed all the same.
    /// </summary>
    public const long DrainBytes = 64 * 1024 * 1024;

    public static IEndpointRouteBuilder MapOrdersApi(this IEndpointRouteBuilder routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        routes.MapGet("/healthz", () => TypedResults.Ok(new { status = "healthy" }));
        routes.MapGet("/instance", Instance);
        var orders = routes.MapGroup("/orders");
        orders.MapPost("/", Create);
        orders.MapGet("/", List);
        orders.MapGet("/{id:guid}", Get);
        orders.MapPut("/{id:guid}/attachments/{name}", Upload);
        orders.MapGet("/{id:guid}/attachments/{name}", Download);
        return routes;
    }

    private static Ok<InstanceResponse> Instance(ITenantContext tenant, IOptions<TenantryAppOptions> options) =>
        TypedResults.Ok(new InstanceResponse(Environment.ProcessId, options.Value.TenantId is null ? "shared" : "dedicated", tenant.TenantId, tenant.Slug, tenant.Tier));

    private static async Task<Results<Created<OrderResponse>, ValidationProblem>> Create(
        CreateOrderRequest body, ITenantContext tenant, OrdersData data, TimeProvider time, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (body.Amount is not { } amount || amount < 0 || amount > 1_000_000_000m)
        {
            errors["amount"] = ["An amount from 0 to 1,000,000,000 is required."];
        }

        if (body.Number is { } n && (n.Length is 0 or > 40 || n.Any(char.IsControl)))
        {
            errors["number"] = ["An order number has 1-40 printable characters."];
        }

        if (body.Note is { Length: > 2000 })
        {
            errors["note"] = ["A note has at most 2000 characters."];
        }

        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, type: "https://tenantry.dev/problems/validation");
        }

        var order = new OrderResponse(
            Guid.CreateVersion7(),
            body.Number ?? "ORD-" + Guid.CreateVersion7().ToString("N")[^10..].ToUpperInvariant(),
            body.Amount!.Value,
            body.Note,
            tenant.Subject,
            time.GetUtcNow());
        await using var session = await data.OpenAsync(tenant, cancellationToken);
        await session.ExecuteAsync(
            "INSERT INTO orders (tenant_id, id, number, amount, note, created_by, created_at) VALUES (@tenant, @id, @number, @amount, @note, @by, @at)",
            [("@tenant", TenantValue(session, tenant)), ("@id", order.Id), ("@number", order.Number), ("@amount", order.Amount), ("@note", order.Note), ("@by", order.CreatedBy), ("@at", order.CreatedAt)],
            cancellationToken);
        await session.CommitAsync(cancellationToken);
        return TypedResults.Created($"/orders/{order.Id}", order);
    }

    private static async Task<Ok<OrderList>> List(ITenantContext tenant, OrdersData data, CancellationToken cancellationToken, int? limit = null)
    {
        var take = Math.Clamp(limit ?? 50, 1, 200);
        await using var session = await data.OpenAsync(tenant, cancellationToken, readOnly: true);
        var items = await session.QueryAsync(
            "SELECT id, number, amount, note, created_by, created_at FROM orders ORDER BY created_at DESC, id DESC LIMIT @take",
            Read, [("@take", take)], cancellationToken);
        return TypedResults.Ok(new OrderList(items));
    }

    private static async Task<Results<Ok<OrderResponse>, ProblemHttpResult>> Get(Guid id, ITenantContext tenant, OrdersData data, CancellationToken cancellationToken)
    {
        await using var session = await data.OpenAsync(tenant, cancellationToken, readOnly: true);
        var found = await session.QueryAsync(
            "SELECT id, number, amount, note, created_by, created_at FROM orders WHERE id = @id", Read, [("@id", id)], cancellationToken);
        return found.Count == 1 ? TypedResults.Ok(found[0]) : NotFound($"Order {id}");
    }

    private static async Task<Results<Created<AttachmentResponse>, ProblemHttpResult>> Upload(
        Guid id, string name, HttpRequest request, ITenantContext tenant, OrdersData data, IOptions<TenantryAppOptions> options, TimeProvider time, CancellationToken cancellationToken)
    {
        if (!TenantUploads.IsSafeName(name))
        {
            return UnsafeName();
        }

        if (request.ContentLength > MaxAttachmentBytes)
        {
            return TooLarge();
        }

        // Checked in a read session: the write session (on SQLite a write lock, shared by every
        // pool tenant) is held only for the row, not while the body arrives.
        await using (var read = await data.OpenAsync(tenant, cancellationToken, readOnly: true))
        {
            if (await read.ScalarAsync("SELECT 1 FROM orders WHERE id = @id", [("@id", id)], cancellationToken) is null)
            {
                return NotFound($"Order {id}");
            }
        }

        // The attachment's limit is enforced while it is copied; the server's own limit only bounds what is drained after a refusal.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = MaxAttachmentBytes + DrainBytes;
        }

        var dataDir = options.Value.DataPath;
        var path = TenantUploads.UploadPath(dataDir, tenant, "orders", id.ToString("N"), name);
        var quota = request.HttpContext.RequestServices.GetService<ITenantStorageQuota>();
        long bytes;
        try
        {
            bytes = await TenantUploads.SaveAsync(dataDir, tenant, path, request.Body, MaxAttachmentBytes, quota, cancellationToken);
        }
        catch (UploadTooLargeException)
        {
            await TenantUploads.DrainAsync(request.Body, DrainBytes, cancellationToken);
            return TooLarge();
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return TooLarge();
        }
        catch (StorageQuotaExceededException ex)
        {
            await TenantUploads.DrainAsync(request.Body, DrainBytes, cancellationToken);
            return Problem(StatusCodes.Status413PayloadTooLarge, "storage-quota-exceeded", "The tenant's storage quota is used up.",
                string.Create(CultureInfo.InvariantCulture, $"The plan allows {ex.Limit} bytes of storage and {ex.Used} are in use; delete files or upgrade the plan."));
        }

        await using var session = await data.OpenAsync(tenant, cancellationToken);
        await session.ExecuteAsync("DELETE FROM order_attachments WHERE order_id = @id AND name = @name", [("@id", id), ("@name", name)], cancellationToken);
        await session.ExecuteAsync(
            "INSERT INTO order_attachments (tenant_id, order_id, name, bytes, created_at) VALUES (@tenant, @id, @name, @bytes, @at)",
            [("@tenant", TenantValue(session, tenant)), ("@id", id), ("@name", name), ("@bytes", bytes), ("@at", time.GetUtcNow())],
            cancellationToken);
        await session.CommitAsync(cancellationToken);
        return TypedResults.Created($"/orders/{id}/attachments/{Uri.EscapeDataString(name)}", new AttachmentResponse(id, name, bytes));
    }

    private static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> Download(
        Guid id, string name, ITenantContext tenant, OrdersData data, IOptions<TenantryAppOptions> options, CancellationToken cancellationToken)
    {
        if (!TenantUploads.IsSafeName(name))
        {
            return UnsafeName();
        }

        await using var session = await data.OpenAsync(tenant, cancellationToken, readOnly: true);
        if (await session.ScalarAsync("SELECT 1 FROM order_attachments WHERE order_id = @id AND name = @name", [("@id", id), ("@name", name)], cancellationToken) is null)
        {
            return NotFound($"Attachment {name} of order {id}");
        }

        var path = TenantUploads.UploadPath(options.Value.DataPath, tenant, "orders", id.ToString("N"), name);
        return TypedResults.PhysicalFile(path, "application/octet-stream", name);
    }

    // Engine-neutral reads: uuid / timestamptz on PostgreSQL, TEXT on SQLite; both readers convert.
    private static OrderResponse Read(DbDataReader r) => new(
        r.GetGuid(0),
        r.GetString(1),
        Convert.ToDecimal(r.GetValue(2), CultureInfo.InvariantCulture),
        r.IsDBNull(3) ? null : r.GetString(3),
        r.GetString(4),
        r.GetFieldValue<DateTimeOffset>(5).ToUniversalTime());

    private static ProblemHttpResult UnsafeName() =>
        Problem(StatusCodes.Status400BadRequest, "unsafe-name", "The attachment name is not allowed.", TenantUploads.SafeNameRule);

    private static ProblemHttpResult TooLarge() =>
        Problem(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The attachment is too large.",
            string.Create(CultureInfo.InvariantCulture, $"An attachment is at most {MaxAttachmentBytes} bytes, however it is sent."));

    private static ProblemHttpResult NotFound(string what) =>
        Problem(StatusCodes.Status404NotFound, "not-found", "Not found.", $"{what} does not exist.");

    private static ProblemHttpResult Problem(int status, string kind, string title, string detail) =>
        TypedResults.Problem(new ProblemDetails { Status = status, Type = "https://tenantry.dev/problems/" + kind, Title = title, Detail = detail });

    /// <summary>
    /// The tenant_id every row carries (its migrations key every table by it, as the pool requires): a uuid on
    /// PostgreSQL, its text on SQLite, where the pool's guarded connection checks it is the tenant of the open connection.
    /// </summary>
    private static object TenantValue(Tenantry.Data.TenantSession session, ITenantContext tenant) =>
        session.Transaction.Connection is Microsoft.Data.Sqlite.SqliteConnection ? tenant.TenantId.ToString() : tenant.TenantId;
}
