using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tenantry.ControlPlane.Jobs;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record EnqueueJobRequest(string? Type, JsonElement? Payload, DateTimeOffset? RunAt);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record EnqueueBatchItem(string? Type, JsonElement? Payload, DateTimeOffset? RunAt, string? IdempotencyKey);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record EnqueueBatchRequest(List<EnqueueBatchItem>? Items);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record AckBatchItem(Guid? Id, string? LeaseId);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record AckBatchRequest(List<AckBatchItem>? Items);

/// <summary>One ack of a batch: the job's status when it was taken (or done before), else the problem type (<c>lease-lost</c>, <c>not-found</c>).</summary>
public sealed record AckBatchResult(string Id, string? Status, string? Error);

public sealed record AckBatchResponse(IReadOnlyList<AckBatchResult> Items);

public sealed record EnqueueBatchResponse(IReadOnlyList<JobResponse> Items);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record LeaseJobsRequest(List<string>? Types, int? Max, int? VisibilitySeconds, int? WaitSeconds);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record AckJobRequest(string? LeaseId);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record NackJobRequest(string? LeaseId, string? Error, int? RetryAfterSeconds);

public sealed record JobResponse(
    string Id,
    string TenantId,
    string Type,
    string Status,
    JsonElement Payload,
    DateTimeOffset RunAt,
    int Attempts,
    int MaxAttempts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? LeaseExpiresAt,
    DateTimeOffset? FinishedAt,
    string? LastError);

/// <summary>A leased job: the job, its lease (for ack and nack) and an access token scoped to its tenant that expires with the lease.</summary>
public sealed record LeasedJobResponse(
    string Id,
    string TenantId,
    string TenantSlug,
    string Type,
    JsonElement Payload,
    int Attempt,
    int MaxAttempts,
    string LeaseId,
    DateTimeOffset LeaseExpiresAt,
    string Token);

public sealed record LeaseResponse(IReadOnlyList<LeasedJobResponse> Items);

public sealed record JobListResponse(IReadOnlyList<JobResponse> Items, string? NextCursor);

/// <summary>One tenant's queue now: jobs waiting or running, due, leased, in the dead-letter queue, runs succeeded and failed, and the oldest due job's wait.</summary>
public sealed record JobQueueResponse(string TenantId, string? TenantSlug, long Depth, long Ready, long Leased, long Dead, long Succeeded, long Failed, double? OldestAgeSeconds);

public sealed record JobQueueListResponse(IReadOnlyList<JobQueueResponse> Items);
