using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tenantry.ControlPlane.Rollouts;

/// <summary>A wave of dedicated instances: canary tenants by id, or a percentage of the silo tenants not in an earlier wave.</summary>
public sealed record WaveRequest(IReadOnlyList<Guid>? Tenants, int? Percent);

/// <summary>Limits a wave's tenants must keep during its bake: the share of 5xx among their requests, and their p99 latency.</summary>
public sealed record GatesRequest(double? MaxErrorRate, double? MaxP99Ms);

/// <summary><c>POST /v1/rollouts</c>.</summary>
public sealed record CreateRolloutRequest(string? App, string? Version, IReadOnlyList<WaveRequest>? Waves, int? BakeSeconds, GatesRequest? Gates);

/// <summary>202 to <c>POST /v1/rollouts</c> and its controls.</summary>
public sealed record RolloutAccepted(Guid Id, Guid OperationId, string Status);

/// <summary>A tenant (or, in wave 0, a shared instance slot: <c>TenantId</c> null) and the release it runs.</summary>
public sealed record RolloutTargetResponse(Guid? TenantId, string? Slug, int? Slot, string Status, string Release, string? Error);

/// <summary>The gate figures of a wave's tenants over its bake.</summary>
public sealed record GateFigures(long Requests, long Status5xx, double ErrorRate, double? P99Ms, bool Passed, string? Reason);

/// <summary>
/// Wave 0 is the shared instances (<c>Shared</c>) with the pool and bridge tenants they serve; waves
/// 1..N are the silo tenants' dedicated instances.
/// </summary>
public sealed record RolloutWaveResponse(int Index, string Kind, string Status, IReadOnlyList<RolloutTargetResponse> Tenants, IReadOnlyList<RolloutTargetResponse>? Shared, GateFigures? Gates);

public sealed record RolloutGates(double? MaxErrorRate, double? MaxP99Ms);

/// <summary><c>GET /v1/rollouts/{id}</c>.</summary>
public sealed record RolloutResponse(
    Guid Id,
    Guid OperationId,
    string App,
    string Version,
    string PreviousRelease,
    string Status,
    string Phase,
    int BakeSeconds,
    RolloutGates Gates,
    IReadOnlyList<RolloutWaveResponse> Waves,
    string? Error,
    string Actor,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    DateTimeOffset? FinishedAt)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    internal static RolloutResponse From(Rollout r, IReadOnlyList<RolloutTarget> targets, IReadOnlyList<RolloutWave> waves) => new(
        r.Id,
        r.Id,
        r.App,
        r.Version,
        r.PreviousRelease,
        r.Status,
        r.Phase,
        r.BakeSeconds,
        new RolloutGates(r.MaxErrorRate, r.MaxP99Ms),
        [.. waves.Select(w => new RolloutWaveResponse(
            w.Wave,
            w.Wave == 0 ? "shared" : "dedicated",
            w.Status,
            [.. targets.Where(t => t.Wave == w.Wave && t.TenantId is not null).Select(ToResponse)],
            w.Wave == 0 ? [.. targets.Where(t => t.Wave == 0 && t.TenantId is null).Select(ToResponse)] : null,
            w.Figures is null ? null : JsonSerializer.Deserialize<GateFigures>(w.Figures, Json)))],
        r.Error,
        r.Actor,
        r.CreatedAt,
        r.UpdatedAt,
        r.FinishedAt);

    internal static string Serialize(GateFigures figures) => JsonSerializer.Serialize(figures, Json);

    internal static JsonObject EventPayload(Rollout r) => new()
    {
        ["rolloutId"] = r.Id.ToString(),
        ["app"] = r.App,
        ["version"] = r.Version,
        ["previousRelease"] = r.PreviousRelease,
    };

    private static RolloutTargetResponse ToResponse(RolloutTarget t) =>
        new(t.TenantId, t.Slug, t.TenantId is null ? t.Slot : null, t.Status, t.Release, t.Error);
}
