using System.Data.Common;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Instances;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane.Rollouts;

/// <summary>
/// Starts rollouts (validated at the edge; the plan of waves computed and stored with the rollout
/// and its audit entry in one transaction) and takes their controls: pause, resume, abort.
/// </summary>
internal sealed class Rollouts(IControlPlaneDatabase db, RolloutWorker worker, TimeProvider time)
{
    public const int MaxWaves = 20;
    public const int MaxBakeSeconds = 3600;
    public const int DefaultBakeSeconds = 30;
    public const double DefaultMaxErrorRate = 0.05;
    public const double MaxP99Limit = 600_000;

    public async Task<(RolloutAccepted? Value, ApiError? Error)> StartAsync(CreateRolloutRequest body, string actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body.App))
        {
            errors["app"] = ["The app is required."];
        }

        if (string.IsNullOrWhiteSpace(body.Version))
        {
            errors["version"] = ["The version to roll out is required."];
        }

        var bake = body.BakeSeconds ?? DefaultBakeSeconds;
        if (bake is < 0 or > MaxBakeSeconds)
        {
            errors["bakeSeconds"] = [$"A bake of 0 to {MaxBakeSeconds} seconds."];
        }

        var maxErrorRate = body.Gates is null ? DefaultMaxErrorRate : body.Gates.MaxErrorRate;
        if (maxErrorRate is { } rate && (double.IsNaN(rate) || rate < 0 || rate > 1))
        {
            errors["gates.maxErrorRate"] = ["A share of 5xx among requests from 0 to 1."];
        }

        var maxP99 = body.Gates?.MaxP99Ms;
        if (maxP99 is { } p99 && (double.IsNaN(p99) || p99 <= 0 || p99 > MaxP99Limit))
        {
            errors["gates.maxP99Ms"] = [$"A p99 latency above 0 and at most {MaxP99Limit} ms."];
        }

        var waves = body.Waves is { Count: > 0 } given ? given : [new WaveRequest(null, 100)];
        if (waves.Count > MaxWaves)
        {
            errors["waves"] = [$"At most {MaxWaves} waves."];
        }

        for (var i = 0; i < waves.Count; i++)
        {
            var wave = waves[i];
            if (wave is null || (wave.Tenants is null) == (wave.Percent is null))
            {
                errors[$"waves[{i}]"] = ["A wave names either tenants (canary tenant ids) or a percent."];
            }
            else if (wave.Percent is { } percent && percent is < 1 or > 100)
            {
                errors[$"waves[{i}].percent"] = ["A percent from 1 to 100."];
            }
            else if (wave.Tenants is { Count: 0 })
            {
                errors[$"waves[{i}].tenants"] = ["A canary wave names at least one tenant."];
            }
        }

        var canaries = waves.Where(w => w?.Tenants is not null).SelectMany(w => w.Tenants!).ToList();
        if (canaries.Count != canaries.Distinct().Count())
        {
            errors["waves"] = ["A tenant is in one wave at most."];
        }

        if (errors.Count > 0)
        {
            return (null, ApiError.Validation(errors));
        }

        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7(now);
        // Read before the transaction: the tenants' rows are not part of it (a tenant onboarded meanwhile starts on the current release).
        var tenants = await db.ReadAsync(c => TenantStore.ListAsync(c, new TenantFilter(null, null, null, null, int.MaxValue)), cancellationToken);
        var result = await db.WriteAsync<(RolloutAccepted?, ApiError?)>(
            async (c, tx) =>
            {
                var app = await AppStore.FindAsync(c, tx, body.App!);
                if (app is null)
                {
                    return (null, ApiError.NotFound($"App '{body.App}'"));
                }

                if (!await AppStore.ReleaseExistsAsync(c, tx, app.Name, body.Version!))
                {
                    return (null, Unprocessable("unknown-release", "The release does not exist.", $"App '{app.Name}' has no release '{body.Version}'; create it first."));
                }

                if (app.CurrentRelease is null || app.CurrentRelease == body.Version)
                {
                    return (null, Unprocessable("release-is-current", "The release is current already.", $"Release '{body.Version}' is the current release of app '{app.Name}'; roll out another one."));
                }

                if (await RolloutStore.ActiveForAppAsync(c, tx, app.Name) is { } active)
                {
                    return (null, ApiError.Conflict("rollout-running", "A rollout of the app is under way.", $"Rollout {active.Id} of app '{app.Name}' is {active.Status}; wait for it, or abort it."));
                }

                var (targets, planError) = await PlanAsync(c, tx, id, app, waves, tenants);
                if (planError is not null)
                {
                    return (null, planError);
                }

                var rollout = new Rollout
                {
                    Id = id,
                    App = app.Name,
                    Version = body.Version!,
                    PreviousRelease = app.CurrentRelease,
                    Status = RolloutStatus.Running,
                    Phase = RolloutPhase.Migrate,
                    Wave = 0,
                    BakeSeconds = bake,
                    MaxErrorRate = maxErrorRate,
                    MaxP99Ms = maxP99,
                    Actor = actor,
                    CreatedAt = now,
                    UpdatedAt = now,
                };
                await RolloutStore.InsertAsync(c, tx, rollout, targets, waves.Count);
                await AuditLog.AppendAsync(c, tx, AuditLog.By(actor, null, "rollout.start", "succeeded", new JsonObject
                {
                    ["rolloutId"] = id.ToString(),
                    ["app"] = app.Name,
                    ["version"] = rollout.Version,
                    ["previousRelease"] = rollout.PreviousRelease,
                    ["waves"] = waves.Count,
                    ["dedicated"] = targets.Count(t => t.Dedicated),
                }, now));
                await RolloutStore.OutboxAsync(c, tx, id, "rollout.started", RolloutResponse.EventPayload(rollout).ToJsonString(), now);
                return (new RolloutAccepted(id, id, RolloutStatus.Running), null);
            },
            cancellationToken);
        if (result.Item1 is not null)
        {
            worker.Enqueue(id);
        }

        return result;
    }

    public async Task<RolloutResponse?> GetAsync(Guid id, CancellationToken cancellationToken) =>
        await db.ReadAsync(
            async c => await RolloutStore.FindAsync(c, null, id) is { } r
                ? RolloutResponse.From(r, await RolloutStore.TargetsAsync(c, null, id), await RolloutStore.WavesAsync(c, null, id))
                : null,
            cancellationToken);

    /// <summary>Rollouts newest first, each with its plan.</summary>
    public async Task<List<RolloutResponse>> ListAsync(string? app, Guid? before, int limit, CancellationToken cancellationToken) =>
        await db.ReadAsync(
            async c =>
            {
                var result = new List<RolloutResponse>();
                foreach (var r in await RolloutStore.ListAsync(c, app, before, limit))
                {
                    result.Add(RolloutResponse.From(r, await RolloutStore.TargetsAsync(c, null, r.Id), await RolloutStore.WavesAsync(c, null, r.Id)));
                }

                return result;
            },
            cancellationToken);

    /// <summary>Pause (<c>running</c> to <c>paused</c>), resume (back), or abort (roll back what changed).</summary>
    public async Task<(RolloutAccepted? Value, ApiError? Error)> ControlAsync(Guid id, string action, string actor, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var result = await db.WriteAsync<(RolloutAccepted?, ApiError?)>(
            async (c, tx) =>
            {
                if (await RolloutStore.FindAsync(c, tx, id) is not { } rollout)
                {
                    return (null, ApiError.NotFound($"Rollout {id}"));
                }

                var changed = action switch
                {
                    "pause" => await RolloutStore.SetStatusAsync(c, tx, id, RolloutStatus.Running, RolloutStatus.Paused, now),
                    "resume" => await RolloutStore.SetStatusAsync(c, tx, id, RolloutStatus.Paused, RolloutStatus.Running, now),
                    _ => await RolloutStore.AbortAsync(c, tx, id, $"Aborted by {actor}.", now),
                };
                if (!changed)
                {
                    return (null, ApiError.Conflict("rollout-state", $"The rollout cannot {action} now.",
                        $"Rollout {id} is {rollout.Status}{(rollout.Phase == RolloutPhase.Rollback && !rollout.Finished ? " and rolling back" : "")}."));
                }

                await AuditLog.AppendAsync(c, tx, AuditLog.By(actor, null, "rollout." + action, "succeeded",
                    new JsonObject { ["rolloutId"] = id.ToString(), ["app"] = rollout.App, ["version"] = rollout.Version }, now));
                var status = action == "pause" ? RolloutStatus.Paused : RolloutStatus.Running;
                return (new RolloutAccepted(id, id, status), null);
            },
            cancellationToken);
        if (result.Item1 is { Status: RolloutStatus.Running })
        {
            worker.Enqueue(id);
        }

        return result;
    }

    private static ApiError Unprocessable(string kind, string title, string detail) =>
        new(StatusCodes.Status422UnprocessableEntity, kind, title, detail);

    /// <summary>
    /// The targets: the app's shared instance slots and the pool and bridge tenants (wave 0), then the
    /// silo tenants with a dedicated instance of the app: canaries by id, percentages of the ones left,
    /// the last wave taking the rest.
    /// </summary>
    private static async Task<(List<RolloutTarget> Targets, ApiError? Error)> PlanAsync(
        DbConnection c, DbTransaction tx, Guid id, App app, IReadOnlyList<WaveRequest> waves, List<Tenant> tenants)
    {
        var instances = (await InstanceStore.ListAsync(c, tx)).Where(i => i.App == app.Name && i.Serving).ToList();
        var live = tenants.Where(t => t.Status is not (TenantStatus.Offboarded or TenantStatus.Offboarding)).ToList();
        var dedicated = instances.Where(i => i.TenantId is not null).Select(i => i.TenantId!.Value).ToHashSet();
        var silo = live.Where(t => dedicated.Contains(t.Id)).OrderBy(t => t.Slug, StringComparer.Ordinal).ToList();

        var targets = new List<RolloutTarget>();
        foreach (var shared in instances.Where(i => i.TenantId is null).OrderBy(i => i.Slot))
        {
            targets.Add(new RolloutTarget(id, targets.Count, 0, null, null, shared.Slot, false, RolloutStatus.Pending, shared.Release, null));
        }

        foreach (var t in live.Where(t => t.Isolation != IsolationModel.Silo).OrderBy(t => t.Slug, StringComparer.Ordinal))
        {
            targets.Add(new RolloutTarget(id, targets.Count, 0, t.Id, t.Slug, 0, false, RolloutStatus.Pending, app.CurrentRelease!, null));
        }

        var left = silo.ToList();
        var known = tenants.ToDictionary(t => t.Id);
        for (var w = 0; w < waves.Count; w++)
        {
            List<Tenant> members;
            if (waves[w].Tenants is { } ids)
            {
                members = [];
                foreach (var tenantId in ids)
                {
                    if (!known.TryGetValue(tenantId, out var tenant))
                    {
                        return ([], Unprocessable("unknown-tenant", "A canary tenant does not exist.", $"waves[{w}]: tenant {tenantId} does not exist."));
                    }

                    if (!dedicated.Contains(tenantId) || left.All(t => t.Id != tenantId))
                    {
                        return ([], Unprocessable("not-a-dedicated-tenant", "A canary tenant has no dedicated instance.",
                            $"waves[{w}]: tenant '{tenant.Slug}' has no dedicated instance of app '{app.Name}'; pool and bridge tenants move with the shared instances, before the first wave."));
                    }

                    members.Add(tenant);
                }
            }
            else
            {
                var count = w == waves.Count - 1 ? left.Count : (int)Math.Ceiling(left.Count * waves[w].Percent!.Value / 100.0);
                members = [.. left.Take(count)];
            }

            if (w == waves.Count - 1)
            {
                // The last wave takes every silo tenant not placed yet.
                members = [.. members.Concat(left.Where(t => members.All(m => m.Id != t.Id)))];
            }

            left.RemoveAll(t => members.Any(m => m.Id == t.Id));
            foreach (var tenant in members)
            {
                var release = instances.First(i => i.TenantId == tenant.Id).Release;
                targets.Add(new RolloutTarget(id, targets.Count, w + 1, tenant.Id, tenant.Slug, 0, true, RolloutStatus.Pending, release, null));
            }
        }

        return (targets, null);
    }
}
