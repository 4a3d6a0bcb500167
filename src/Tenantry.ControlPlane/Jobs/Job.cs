using System.Text.Json;
using System.Text.RegularExpressions;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>Where a job is: waiting (or due), leased by a worker, done, or in its tenant's dead-letter queue.</summary>
public static class JobStatus
{
    public const string Queued = "queued";
    public const string Leased = "leased";
    public const string Succeeded = "succeeded";
    public const string Dead = "dead";

    public static bool IsKnown(string value) => value is Queued or Leased or Succeeded or Dead;
}

/// <summary>A stored job. Times are Unix milliseconds.</summary>
public sealed record Job
{
    public required Guid Id { get; init; }
    public required Guid TenantId { get; init; }
    public required string Type { get; init; }
    public required string Payload { get; init; }
    public required string Status { get; init; }
    public required long RunAt { get; init; }
    public required int Attempts { get; init; }
    public required int MaxAttempts { get; init; }
    public required long CreatedAt { get; init; }
    public string? LeaseId { get; init; }
    public long? LeaseExpiresAt { get; init; }
    public long? LeasedAt { get; init; }
    public long? FinishedAt { get; init; }
    public string? LastError { get; init; }
}

/// <summary>A job handed to a worker and the lease that its ack or nack names.</summary>
public sealed record LeasedJob(Job Job, string LeaseId, long LeaseExpiresAt);

/// <summary>A new job as the API validated it.</summary>
public sealed record NewJob(Guid TenantId, string Type, string Payload, long RunAt, string? IdempotencyKey, string? RequestHash);

/// <summary>What a lease asks for: whose jobs (null: every tenant's, by fair share), which types, how many, for how long.</summary>
public sealed record LeaseRequest(Guid? TenantId, IReadOnlyList<string>? Types, int Max, TimeSpan Visibility);

/// <summary>One tenant's queue figures for health and telemetry.</summary>
public sealed record JobQueueFigures(Guid TenantId, long Depth, long Ready, long Leased, long Dead, long Succeeded, long Failed, double? OldestAgeSeconds);

public sealed record EnqueueResult(Job Job, bool Created);

public enum JobOutcome
{
    Done,
    NotFound,
    LeaseLost,
}

internal static partial class JobRules
{
    public const int MaxLease = 100;

    public static bool IsTypeName(string? value) => value is not null && TypeName().IsMatch(value);

    public static string Hash(string type, string payload, long? runAt) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(
            JsonSerializer.Serialize(new object?[] { type, payload, runAt }))));

    /// <summary>The wait before retry <paramref name="attempts"/> + 1: doubling from <paramref name="first"/>, at most <paramref name="max"/>.</summary>
    public static TimeSpan Backoff(int attempts, TimeSpan first, TimeSpan max)
    {
        var wait = first * Math.Pow(2, Math.Clamp(attempts - 1, 0, 30));
        return wait < max ? wait : max;
    }

    [GeneratedRegex("^[a-z][a-z0-9._-]{0,99}$", RegexOptions.CultureInvariant)]
    private static partial Regex TypeName();
}
