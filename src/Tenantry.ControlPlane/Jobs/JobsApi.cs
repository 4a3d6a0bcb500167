using System.Globalization;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Identity;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// Tenant work queues over HTTP. A tenant token (a user's or a machine client's) enqueues into, reads,
/// leases from and finishes jobs of its own tenant only: the tenant comes from the token, never from
/// the request, and another tenant's job answers 404 as one that does not exist. An operator token
/// reads any tenant's jobs and leases from every tenant by weighted fair share (a shared worker pool);
/// each leased job carries a token scoped to the job's tenant for the work itself.
/// </summary>
public static class JobsApi
{
    private const int MaxWaitSeconds = 20;

    public static RouteGroupBuilder MapJobsApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        var jobs = v1.MapGroup("/jobs").WithTags("Jobs");
        jobs.MapPost("/", Enqueue).Accepts<EnqueueJobRequest>("application/json")
            .WithSummary("Enqueue a job into the token's tenant queue: {type, payload, runAt?} with an optional Idempotency-Key (the same key gives the same job); 202 {id, status, …}. 400 for a bad type or a past runAt, 413 for an oversized payload, 429 when the queue is at its plan's depth.");
        jobs.MapPost("/batch", EnqueueBatch).Accepts<EnqueueBatchRequest>("application/json")
            .WithSummary("Enqueue 1-100 jobs in one transaction: {items: [{type, payload, runAt?, idempotencyKey?}]}; 202 {items} in order. All go in or none: 400 naming items[i].field, 413 for an oversized payload, 429 when they do not all fit the queue's depth.");
        jobs.MapPost("/ack", AckBatch).Accepts<AckBatchRequest>("application/json")
            .WithSummary("Ack 1-100 leased jobs in one transaction: {items: [{id, leaseId}]}; 200 {items: [{id, status, error}]}, error lease-lost or not-found per job.");
        jobs.MapGet("/queues", Queues)
            .WithSummary("The queues now, deepest first: an operator's every tenant's (or tenantId's), a tenant token its own. Depth, ready, leased, dead letters, runs succeeded and failed, oldest due job's age.");
        jobs.MapGet("/", List).WithSummary("The tenant's jobs, newest first (status=queued|leased|succeeded|dead; dead is the dead-letter queue); an operator names tenantId. Cursor-paginated.");
        jobs.MapGet("/{id:guid}", Get).WithSummary("A job of the token's tenant (an operator: any job).");
        jobs.MapPost("/lease", Lease).Accepts<LeaseJobsRequest>("application/json")
            .WithSummary("Lease due jobs: {types?, max (1-100), visibilitySeconds, waitSeconds? (0-20, long poll)}; each item has a leaseId for ack/nack and a token scoped to the job's tenant. A tenant token leases its own jobs; an operator's leases every tenant's by weighted fair share within each plan's concurrency.");
        jobs.MapPost("/{id:guid}/ack", Ack).Accepts<AckJobRequest>("application/json")
            .WithSummary("Finish a leased job: {leaseId}. 409 when the lease lapsed and the job was leased again.");
        jobs.MapPost("/{id:guid}/nack", Nack).Accepts<NackJobRequest>("application/json")
            .WithSummary("Give a leased job back: {leaseId, error?, retryAfterSeconds?}; it is retried with backoff, or goes to the dead-letter queue after its last attempt.");
        jobs.MapJobRoutesApi();
        return v1;
    }

    private static async Task<Results<Accepted<JobResponse>, ProblemHttpResult>> Enqueue(HttpContext http, IJobQueues queues, IOptions<JobsOptions> options, TimeProvider time)
    {
        if (TokenTenant(http.User) is not { } tenantId)
        {
            return new ApiError(StatusCodes.Status403Forbidden, "tenant-token-required", "A tenant token is required.", "Jobs are enqueued with a token of the tenant whose queue they go to.").ToResult();
        }

        var o = options.Value;
        var (body, error) = await JsonBody.ReadAsync<EnqueueJobRequest>(http.Request, o.MaxPayloadBytes + 4096);
        if (error is not null)
        {
            return (error.Kind == "payload-too-large" ? TooLarge(o) : error).ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        if (!JobRules.IsTypeName(body!.Type))
        {
            errors["type"] = ["type is 1-100 of a-z, 0-9, '.', '-', '_', starting with a letter."];
        }
        else if (o.Types.Count > 0 && !o.Types.Contains(body.Type!, StringComparer.Ordinal))
        {
            return new ApiError(StatusCodes.Status400BadRequest, "unknown-job-type", "The job type is not known.", $"'{body.Type}' is not one of the configured job types: {string.Join(", ", o.Types)}.").ToResult();
        }

        if (body.Payload is null || body.Payload.Value.ValueKind == JsonValueKind.Undefined)
        {
            errors["payload"] = ["payload is required: any JSON value (an object, usually)."];
        }

        var now = time.GetUtcNow();
        if (body.RunAt is { } runAt && runAt < now)
        {
            return new ApiError(StatusCodes.Status400BadRequest, "run-at-in-past", "runAt is in the past.",
                string.Create(CultureInfo.InvariantCulture, $"runAt {runAt:O} is before the server's time {now:O}; omit it to run as soon as possible.")).ToResult();
        }

        if (body.RunAt is { } late && late > now.AddDays(366))
        {
            errors["runAt"] = ["runAt is at most 366 days ahead."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var payload = body.Payload!.Value.GetRawText();
        if (Encoding.UTF8.GetByteCount(payload) > o.MaxPayloadBytes)
        {
            return TooLarge(o).ToResult();
        }

        var key = http.Request.Headers[IdempotencyKey.Header].ToString();
        if (key.Length > 255 || key.Any(c => c is < ' ' or > '~'))
        {
            return ApiError.Validation(IdempotencyKey.Header, "An Idempotency-Key is 1-255 printable ASCII characters.").ToResult();
        }

        var runAtMs = body.RunAt?.ToUnixTimeMilliseconds();
        try
        {
            var result = await queues.EnqueueAsync(
                new NewJob(tenantId, body.Type!, payload, runAtMs ?? now.ToUnixTimeMilliseconds(), key.Length == 0 ? null : key, key.Length == 0 ? null : JobRules.Hash(body.Type!, payload, runAtMs)),
                http.RequestAborted);
            return TypedResults.Accepted($"/v1/jobs/{result.Job.Id}", ToResponse(result.Job));
        }
        catch (JobQueueFullException ex)
        {
            http.Response.Headers.RetryAfter = "1";
            return new ApiError(StatusCodes.Status429TooManyRequests, "job-queue-full", "The tenant's job queue is full.",
                string.Create(CultureInfo.InvariantCulture, $"The plan allows {ex.MaxDepth} queued or running jobs; wait for some to finish or upgrade the plan.")).ToResult();
        }
        catch (JobQueueMissingException)
        {
            return ApiError.Conflict("job-queue-missing", "The tenant has no job queue.", "The tenant's queue is provisioned by onboarding and deleted by offboarding.").ToResult();
        }
        catch (IdempotencyMismatchException)
        {
            return new ApiError(StatusCodes.Status422UnprocessableEntity, "idempotency-key-reused", "The Idempotency-Key was used for a different job.",
                $"The key '{key}' was first sent with another type, payload or runAt; use a new key for a new job.").ToResult();
        }
    }

    private static async Task<Results<Ok<JobQueueListResponse>, ProblemHttpResult>> Queues(Guid? tenantId, HttpContext http, IJobQueues queues, IControlPlaneDatabase db, ITenantRegistry tenants)
    {
        var own = TokenTenant(http.User);
        if (own is not null && tenantId is not null && tenantId != own)
        {
            return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "The policies deny this request.", "This token belongs to another tenant.").ToResult();
        }

        var figures = await queues.FiguresAsync(own ?? tenantId, http.RequestAborted);
        var slugs = await db.ReadAsync(async c =>
        {
            var found = new Dictionary<Guid, string?>();
            foreach (var f in figures)
            {
                found[f.TenantId] = (await tenants.GetAsync(c, null, f.TenantId))?.Slug;
            }

            return found;
        }, http.RequestAborted);
        return TypedResults.Ok(new JobQueueListResponse([.. figures
            .OrderByDescending(f => f.Depth).ThenBy(f => slugs[f.TenantId], StringComparer.Ordinal)
            .Select(f => new JobQueueResponse(f.TenantId.ToString(), slugs[f.TenantId], f.Depth, f.Ready, f.Leased, f.Dead, f.Succeeded, f.Failed,
                f.OldestAgeSeconds is { } age ? Math.Round(age, 1) : null))]));
    }

    private const int MaxBatch = 100;

    private static async Task<Results<Accepted<EnqueueBatchResponse>, ProblemHttpResult>> EnqueueBatch(HttpContext http, IJobQueues queues, IOptions<JobsOptions> options, TimeProvider time)
    {
        if (TokenTenant(http.User) is not { } tenantId)
        {
            return new ApiError(StatusCodes.Status403Forbidden, "tenant-token-required", "A tenant token is required.", "Jobs are enqueued with a token of the tenant whose queue they go to.").ToResult();
        }

        var o = options.Value;
        var (body, error) = await JsonBody.ReadAsync<EnqueueBatchRequest>(http.Request, MaxBatch * (o.MaxPayloadBytes + 4096));
        if (error is not null)
        {
            return (error.Kind == "payload-too-large" ? TooLarge(o) : error).ToResult();
        }

        if (body!.Items is not { Count: > 0 and <= MaxBatch } items)
        {
            return ApiError.Validation("items", $"items lists 1-{MaxBatch} jobs.").ToResult();
        }

        var now = time.GetUtcNow();
        var errors = new Dictionary<string, string[]>();
        var jobs = new List<NewJob>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var at = $"items[{i}]";
            if (item is null)
            {
                errors[at] = ["Each item is a job: {type, payload, runAt?, idempotencyKey?}."];
                continue;
            }

            if (!JobRules.IsTypeName(item.Type))
            {
                errors[$"{at}.type"] = ["type is 1-100 of a-z, 0-9, '.', '-', '_', starting with a letter."];
            }
            else if (o.Types.Count > 0 && !o.Types.Contains(item.Type!, StringComparer.Ordinal))
            {
                errors[$"{at}.type"] = [$"'{item.Type}' is not one of the configured job types: {string.Join(", ", o.Types)}."];
            }

            if (item.Payload is null || item.Payload.Value.ValueKind == JsonValueKind.Undefined)
            {
                errors[$"{at}.payload"] = ["payload is required: any JSON value (an object, usually)."];
            }

            if (item.RunAt is { } runAt && (runAt < now || runAt > now.AddDays(366)))
            {
                errors[$"{at}.runAt"] = [string.Create(CultureInfo.InvariantCulture, $"runAt is from the server's time {now:O} to 366 days ahead; omit it to run as soon as possible.")];
            }

            if (item.IdempotencyKey is { } k && (k.Length is 0 or > 255 || k.Any(c => c is < ' ' or > '~')))
            {
                errors[$"{at}.idempotencyKey"] = ["An idempotency key is 1-255 printable ASCII characters."];
            }

            if (errors.Count > 0)
            {
                continue;
            }

            var payload = item.Payload!.Value.GetRawText();
            if (Encoding.UTF8.GetByteCount(payload) > o.MaxPayloadBytes)
            {
                return (TooLarge(o) with { Detail = string.Create(CultureInfo.InvariantCulture, $"items[{i}].payload: a payload is at most {o.MaxPayloadBytes} bytes of JSON; put large inputs in object storage and pass their key.") }).ToResult();
            }

            var runAtMs = item.RunAt?.ToUnixTimeMilliseconds();
            jobs.Add(new NewJob(tenantId, item.Type!, payload, runAtMs ?? now.ToUnixTimeMilliseconds(), item.IdempotencyKey, item.IdempotencyKey is null ? null : JobRules.Hash(item.Type!, payload, runAtMs)));
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        try
        {
            var results = await queues.EnqueueManyAsync(jobs, http.RequestAborted);
            return TypedResults.Accepted("/v1/jobs", new EnqueueBatchResponse([.. results.Select(r => ToResponse(r.Job))]));
        }
        catch (JobQueueFullException ex)
        {
            http.Response.Headers.RetryAfter = "1";
            return new ApiError(StatusCodes.Status429TooManyRequests, "job-queue-full", "The tenant's job queue is full.",
                string.Create(CultureInfo.InvariantCulture, $"The plan allows {ex.MaxDepth} queued or running jobs and the batch does not fit; none was enqueued.")).ToResult();
        }
        catch (JobQueueMissingException)
        {
            return ApiError.Conflict("job-queue-missing", "The tenant has no job queue.", "The tenant's queue is provisioned by onboarding and deleted by offboarding.").ToResult();
        }
        catch (IdempotencyMismatchException)
        {
            return new ApiError(StatusCodes.Status422UnprocessableEntity, "idempotency-key-reused", "An idempotency key was used for a different job.",
                "A key of the batch was first sent with another type, payload or runAt; none was enqueued.").ToResult();
        }
    }

    private static async Task<Results<Ok<AckBatchResponse>, ProblemHttpResult>> AckBatch(HttpContext http, IJobQueues queues)
    {
        var (body, error) = await JsonBody.ReadAsync<AckBatchRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (body!.Items is not { Count: > 0 and <= MaxBatch } items)
        {
            return ApiError.Validation("items", $"items lists 1-{MaxBatch} acks: {{id, leaseId}}.").ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        for (var i = 0; i < items.Count; i++)
        {
            if (items[i]?.Id is null)
            {
                errors[$"items[{i}].id"] = ["id is the job's id."];
            }

            if (string.IsNullOrEmpty(items[i]?.LeaseId))
            {
                errors[$"items[{i}].leaseId"] = ["leaseId is the lease the job was handed out under."];
            }
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var results = await queues.AckManyAsync([.. items.Select(i => (i.Id!.Value, i.LeaseId!))], TokenTenant(http.User), http.RequestAborted);
        return TypedResults.Ok(new AckBatchResponse([.. results.Select(r => new AckBatchResult(
            r.Id.ToString(),
            r.Outcome == JobOutcome.NotFound ? null : r.Status,
            r.Outcome switch { JobOutcome.Done => null, JobOutcome.LeaseLost => "lease-lost", _ => "not-found" }))]));
    }

    private static async Task<Results<Ok<JobResponse>, ProblemHttpResult>> Get(Guid id, HttpContext http, IJobQueues queues)
    {
        var job = await queues.GetAsync(id, TokenTenant(http.User), http.RequestAborted);
        return job is null ? ApiError.NotFound($"Job '{id}'").ToResult() : TypedResults.Ok(ToResponse(job));
    }

    private static async Task<Results<Ok<JobListResponse>, ProblemHttpResult>> List(
        string? status, Guid? tenantId, int? limit, string? cursor, HttpContext http, IJobQueues queues)
    {
        var own = TokenTenant(http.User);
        if (own is not null && tenantId is not null && tenantId != own)
        {
            return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "The policies deny this request.", "This token belongs to another tenant.").ToResult();
        }

        if ((own ?? tenantId) is not { } tenant)
        {
            return ApiError.Validation("tenantId", "An operator names the tenant: tenantId=<id>.").ToResult();
        }

        if (status is not null && !JobStatus.IsKnown(status))
        {
            return ApiError.Validation("status", "status is queued, leased, succeeded or dead.").ToResult();
        }

        if (Paging.CheckLimit(limit, out var take) is { } bad)
        {
            return bad.ToResult();
        }

        long? before = null;
        if (cursor is not null)
        {
            if (Paging.Decode(cursor) is not { } position || !long.TryParse(position, NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
            {
                return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
            }

            before = seq;
        }

        var (items, next) = await queues.ListAsync(tenant, status, before, take, http.RequestAborted);
        return TypedResults.Ok(new JobListResponse([.. items.Select(ToResponse)], next is { } n ? Paging.Encode(n.ToString(CultureInfo.InvariantCulture)) : null));
    }

    private static async Task<Results<Ok<LeaseResponse>, ProblemHttpResult>> Lease(
        HttpContext http, IJobQueues queues, IControlPlaneDatabase db, ITenantRegistry tenants, JobTokens tokens, IOptions<JobsOptions> options)
    {
        var (body, error) = await JsonBody.ReadAsync<LeaseJobsRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        var maxVisibility = (int)options.Value.MaxVisibility.TotalSeconds;
        if (body!.Max is not { } max || max is < 1 or > JobRules.MaxLease)
        {
            errors["max"] = [$"max is 1-{JobRules.MaxLease}."];
        }

        if (body.VisibilitySeconds is not { } visibility || visibility < 1 || visibility > maxVisibility)
        {
            errors["visibilitySeconds"] = [$"visibilitySeconds is 1-{maxVisibility}."];
        }

        if (body.WaitSeconds is < 0 or > MaxWaitSeconds)
        {
            errors["waitSeconds"] = [$"waitSeconds is 0-{MaxWaitSeconds}."];
        }

        if (body.Types is { } types && (types.Count is 0 or > 20 || types.Any(t => !JobRules.IsTypeName(t))))
        {
            errors["types"] = ["types lists 1-20 job type names."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var leased = await queues.LeaseAsync(
            new LeaseRequest(TokenTenant(http.User), body.Types, body.Max!.Value, TimeSpan.FromSeconds(body.VisibilitySeconds!.Value)),
            TimeSpan.FromSeconds(body.WaitSeconds ?? 0),
            http.RequestAborted);
        var items = new List<LeasedJobResponse>(leased.Count);
        var known = new Dictionary<Guid, Tenant?>();
        foreach (var lease in leased)
        {
            var job = lease.Job;
            if (!known.TryGetValue(job.TenantId, out var tenant))
            {
                tenant = known[job.TenantId] = await db.ReadAsync(c => tenants.GetAsync(c, null, job.TenantId), CancellationToken.None);
            }

            if (tenant is null)
            {
                continue;
            }

            var expires = DateTimeOffset.FromUnixTimeMilliseconds(lease.LeaseExpiresAt);
            items.Add(new LeasedJobResponse(
                job.Id.ToString(), job.TenantId.ToString(), tenant.Slug, job.Type, Parse(job.Payload), job.Attempts, job.MaxAttempts,
                lease.LeaseId, expires, tokens.Issue(tenant, job, expires)));
        }

        return TypedResults.Ok(new LeaseResponse(items));
    }

    private static async Task<Results<Ok<JobResponse>, ProblemHttpResult>> Ack(Guid id, HttpContext http, IJobQueues queues)
    {
        var (body, error) = await JsonBody.ReadAsync<AckJobRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (string.IsNullOrEmpty(body!.LeaseId))
        {
            return ApiError.Validation("leaseId", "leaseId is the lease the job was handed out under.").ToResult();
        }

        return Finished(id, await queues.AckAsync(id, body.LeaseId, TokenTenant(http.User), http.RequestAborted));
    }

    private static async Task<Results<Ok<JobResponse>, ProblemHttpResult>> Nack(Guid id, HttpContext http, IJobQueues queues)
    {
        var (body, error) = await JsonBody.ReadAsync<NackJobRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (string.IsNullOrEmpty(body!.LeaseId))
        {
            return ApiError.Validation("leaseId", "leaseId is the lease the job was handed out under.").ToResult();
        }

        if (body.RetryAfterSeconds is < 0 or > 86_400)
        {
            return ApiError.Validation("retryAfterSeconds", "retryAfterSeconds is 0-86400.").ToResult();
        }

        var retry = body.RetryAfterSeconds is { } s ? TimeSpan.FromSeconds(s) : (TimeSpan?)null;
        return Finished(id, await queues.NackAsync(id, body.LeaseId, TokenTenant(http.User), body.Error, retry, http.RequestAborted));
    }

    private static Results<Ok<JobResponse>, ProblemHttpResult> Finished(Guid id, (JobOutcome Outcome, Job? Job) result) => result.Outcome switch
    {
        JobOutcome.Done => TypedResults.Ok(ToResponse(result.Job!)),
        JobOutcome.LeaseLost => ApiError.Conflict("lease-lost", "The lease is not the job's.",
            "The lease lapsed (its visibility timeout passed) and the job was handed out again, or it was finished the other way; its current holder finishes it.").ToResult(),
        _ => ApiError.NotFound($"Job '{id}'").ToResult(),
    };

    /// <summary>The tenant of a tenant token; null for an operator token. A tenant claim that is no id matches no tenant.</summary>
    private static Guid? TokenTenant(ClaimsPrincipal user) =>
        user.FindFirst(IdentityApi.TenantIdClaim) is not { } claim ? null : Guid.TryParse(claim.Value, out var id) ? id : Guid.Empty;

    private static ApiError TooLarge(JobsOptions o) => new(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The job payload is too large.",
        string.Create(CultureInfo.InvariantCulture, $"A payload is at most {o.MaxPayloadBytes} bytes of JSON; put large inputs in object storage and pass their key."));

    private static JsonElement Parse(string json)
    {
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    internal static JobResponse ToResponse(Job job) => new(
        job.Id.ToString(), job.TenantId.ToString(), job.Type, job.Status, Parse(job.Payload),
        DateTimeOffset.FromUnixTimeMilliseconds(job.RunAt), job.Attempts, job.MaxAttempts, DateTimeOffset.FromUnixTimeMilliseconds(job.CreatedAt),
        job.Status == JobStatus.Leased && job.LeaseExpiresAt is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null,
        job.FinishedAt is { } f ? DateTimeOffset.FromUnixTimeMilliseconds(f) : null,
        job.LastError);
}
