namespace Tenantry.ControlPlane.Rollouts;

/// <summary>Where a rollout is in its order: migrations, the shared instances, the dedicated waves, the rollback of what changed, or finished.</summary>
internal static class RolloutPhase
{
    public const string Migrate = "migrate";
    public const string Shared = "shared";
    public const string Waves = "waves";
    public const string Rollback = "rollback";
    public const string Done = "done";
}

/// <summary>The wire names of a rollout's, a wave's and a target's status.</summary>
public static class RolloutStatus
{
    public const string Running = "running";
    public const string Paused = "paused";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string RolledBack = "rolled-back";

    // Waves and targets.
    public const string Pending = "pending";
    public const string Updating = "updating";
    public const string Baking = "baking";
    public const string Updated = "updated";
}

/// <summary>A release rollout of one app: its plan, gates and where it is.</summary>
internal sealed record Rollout
{
    public required Guid Id { get; init; }

    public required string App { get; init; }

    public required string Version { get; init; }

    /// <summary>The app's current release when the rollout started: what a rollback returns to.</summary>
    public required string PreviousRelease { get; init; }

    public required string Status { get; init; }

    public required string Phase { get; init; }

    /// <summary>The dedicated wave under way (1-based; 0 before the first).</summary>
    public required int Wave { get; init; }

    public required int BakeSeconds { get; init; }

    public double? MaxErrorRate { get; init; }

    public double? MaxP99Ms { get; init; }

    public string? Error { get; init; }

    public required string Actor { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public required DateTimeOffset UpdatedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }

    public bool Finished => Status is RolloutStatus.Succeeded or RolloutStatus.Failed or RolloutStatus.RolledBack;
}

/// <summary>
/// One thing a rollout moves to the new release: a shared instance slot (<see cref="TenantId"/> null,
/// wave 0), a pool or bridge tenant (wave 0, moved with the shared instances), or a silo tenant's
/// dedicated instance (wave 1..N).
/// </summary>
internal sealed record RolloutTarget(Guid RolloutId, int Ordinal, int Wave, Guid? TenantId, string? Slug, int Slot, bool Dedicated, string Status, string Release, string? Error);

/// <summary>A wave's status and the gate figures read at its end (null before).</summary>
internal sealed record RolloutWave(Guid RolloutId, int Wave, string Status, string? Figures);
