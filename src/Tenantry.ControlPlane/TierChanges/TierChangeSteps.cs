using System.Data.Common;
using System.Diagnostics;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Cells;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>Points in a move where tests can act (write rows while the copy runs, hold the freeze, change the target before verify).</summary>
public sealed class TierChangeHooks
{
    /// <summary>Called with the point's name (<c>copy-batch</c>, <c>bulk-verify</c>, <c>frozen</c>, <c>verify</c>, <c>switch</c>) and the tenant.</summary>
    public Func<string, Guid, CancellationToken, Task>? At { get; set; }

    internal Task RunAsync(string point, Guid tenant, CancellationToken ct) => At?.Invoke(point, tenant, ct) ?? Task.CompletedTask;
}

/// <summary>
/// The steps of a <c>change-tier</c> operation, and of a <c>move</c> between cells (<see cref="MoveSteps"/>: its row names
/// the target cell and, once provision-target chose them, both sides' servers; when they are one place the data steps do
/// nothing and the switch updates the placement only). The target is read from <c>tier_changes</c> on every step, so a
/// restarted worker resumes with it; each step is idempotent (the copy empties the target's rows of a table before
/// filling it, capture and freeze triggers are made if missing, the switch is one transaction recorded by its phase).
/// </summary>
internal sealed partial class TierChangeSteps(
    IControlPlaneDatabase db,
    ITenantLifecycle lifecycle,
    ITenantDatabaseProvider databases,
    ITenantComputeProvider compute,
    ITenantStorageProvider storage,
    IAppRegistry apps,
    IReleaseMigrator migrator,
    IOptions<TierChangeOptions> options,
    RouteChanges routes,
    TimeProvider time,
    ILogger<TierChangeSteps> logger,
    CellPlacement cells,
    TierChangeHooks? hooks = null) : IOperationSteps
{
    public OperationKind Kind => OperationKind.TierChange;

    public async Task<JsonObject?> ExecuteAsync(Operation operation, Tenant tenant, string step, CancellationToken ct)
    {
        var change = await db.ReadAsync(c => TierChangeStore.GetAsync(c, null, operation.Id), ct)
            ?? throw new PermanentStepException("The tier change's record is missing.");
        var source = Ref(tenant, change, target: false);
        var target = Ref(tenant, change, target: true);
        if (change.Phase is TierChangePhase.RolledBack)
        {
            throw new PermanentStepException("The tier change was rolled back; start a new one.");
        }

        var switched = change.Phase is TierChangePhase.Switched or TierChangePhase.Retired;
        if (switched && step is not (StepNames.Switch or StepNames.Drain or StepNames.RetireSource))
        {
            return null; // Done before a crash: the tenant already lives at the target.
        }

        if (change.SamePlace && step is not (StepNames.ProvisionTarget or StepNames.Switch or StepNames.RetireSource))
        {
            return null; // A move that keeps the data where it is: the switch updates the placement only.
        }

        switch (step)
        {
            case StepNames.ProvisionTarget:
                await ProvisionAsync(operation, tenant, change, ct);
                return null;
            case StepNames.CaptureChanges:
            {
                var (from, tables) = await SourceAsync(source, ct);
                await using var c = await from.OpenAsync(ct);
                await TierChangeSql.For(from).InstallCaptureAsync(c, from, tenant.Id, tables, ct);
                return null;
            }

            case StepNames.Copy:
                await CopyAsync(source, target, ct);
                return null;
            case StepNames.CatchUp:
            {
                await ReadyComputeAsync(change, target, ct);
                var plan = await PlanAsync(source, target, ct);
                await CatchUpAsync(plan, source.Id, options.Value.FreezeBacklog, keep: false, ct);
                await VerifyBulkAsync(plan, source.Id, ct);
                await CatchUpAsync(plan, source.Id, options.Value.FreezeBacklog, keep: true, ct);
                return null;
            }

            case StepNames.Freeze:
                await FreezeAsync(operation, await PlanAsync(source, target, ct), source.Id, ct);
                return null;
            case StepNames.Verify:
                await VerifyAsync(await PlanAsync(source, target, ct), source.Id, ct);
                return null;
            case StepNames.Switch:
                if (!switched)
                {
                    await SwitchAsync(operation, change, source, target, ct);
                }

                if (change is { IsMove: true, SamePlace: false, TargetIsolation: IsolationModel.Silo })
                {
                    // Dedicated instances read their database at start: started again, they find it on the new server.
                    await compute.RestartDedicatedAsync(target with { Server = null }, ct);
                }

                return null;
            case StepNames.Drain:
                await Task.Delay(options.Value.DrainTime, time, ct);
                if (change.SourceIsolation == IsolationModel.Silo && change.TargetIsolation != IsolationModel.Silo)
                {
                    await compute.RemoveDedicatedAsync(source, ct);
                }

                return null;
            case StepNames.RetireSource:
                if (change is { Phase: TierChangePhase.Switched, RetireAfter: { } after } && after <= time.GetUtcNow())
                {
                    try
                    {
                        await RetireAsync(change, tenant, ct);
                    }
#pragma warning disable CA1031 // The tenant lives at the target already: an old copy that cannot go now is the retirer's to retry, not a failed move.
                    catch (Exception ex) when (!ct.IsCancellationRequested)
#pragma warning restore CA1031
                    {
                        Log.RetireDeferred(logger, tenant.Id, operation.Id, ex);
                    }
                }

                return null;

            default:
                throw new PermanentStepException($"Unknown step '{step}'.");
        }
    }

    /// <summary>Back to the source: the freeze lifted, capture dropped, the target (and any dedicated compute made for it) removed.</summary>
    public async Task RollBackAsync(Operation operation, Tenant tenant, string failedStep, CancellationToken ct)
    {
        var change = await db.ReadAsync(c => TierChangeStore.GetAsync(c, null, operation.Id), ct);
        if (change is null || change.Phase is TierChangePhase.Switched or TierChangePhase.Retired or TierChangePhase.RolledBack)
        {
            return; // After the switch the tenant lives at the target: nothing to undo.
        }

        if (change.SamePlace)
        {
            // A move that kept the data where it was made nothing to undo.
            await db.WriteAsync((c, tx) => TierChangeStore.SetPhaseAsync(c, tx, operation.Id, TierChangePhase.RolledBack, time.GetUtcNow()), ct);
            Log.RolledBack(logger, tenant.Id, operation.Id, failedStep);
            return;
        }

        var source = Ref(tenant, change, target: false);
        var target = Ref(tenant, change, target: true);
        if (await databases.PlaceAsync(source, ct) is { } from)
        {
            await using var c = await from.OpenAsync(ct);
            await TierChangeSql.For(from).DropMoveAsync(c, from, tenant.Id, ct);
        }

        await SetRoutedPhaseAsync(operation.Id, TierChangePhase.Moving, ct);
        if (change.TargetIsolation == IsolationModel.Silo && change.SourceIsolation != IsolationModel.Silo)
        {
            await compute.RemoveDedicatedAsync(target, ct);
        }

        await DropAsync(target, change, ct);
        await db.WriteAsync((c, tx) => TierChangeStore.SetPhaseAsync(c, tx, operation.Id, TierChangePhase.RolledBack, time.GetUtcNow()), ct);
        Log.RolledBack(logger, tenant.Id, operation.Id, failedStep);
    }

    /// <summary>
    /// Exports the old copy into the tenant's export folder (as offboarding does), drops the move's triggers and
    /// log, then deletes it: on the pool only this tenant's rows. Run by the retire-source step once the grace is
    /// over, else by <see cref="TierChangeRetirer"/>.
    /// </summary>
    public async Task RetireAsync(TierChange change, Tenant tenant, CancellationToken ct)
    {
        var source = Ref(tenant, change, target: false);
        if (!change.SamePlace && await databases.PlaceAsync(source, ct) is { } from)
        {
            await storage.SaveExportAsync(
                source,
                $"{tenant.Slug}-{change.SourceIsolation.ToWire()}-before-{(change.IsMove ? "move" : "tier-change")}-{change.OperationId:N}.zip",
                async stream =>
                {
                    using var archive = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
                    var manifest = archive.CreateEntry("tier-change.json", CompressionLevel.Fastest);
                    await using (var entry = manifest.Open())
                    {
                        await JsonSerializer.SerializeAsync(entry, new JsonObject
                        {
                            ["tenantId"] = tenant.Id.ToString(),
                            ["slug"] = tenant.Slug,
                            ["operationId"] = change.OperationId.ToString(),
                            ["from"] = new JsonObject { ["tier"] = change.SourceTier, ["isolation"] = change.SourceIsolation.ToWire() },
                            ["to"] = new JsonObject { ["tier"] = change.TargetTier, ["isolation"] = change.TargetIsolation.ToWire() },
                            ["cells"] = change.IsMove ? new JsonObject { ["from"] = change.SourceCell, ["to"] = change.TargetCell } : null,
                            ["servers"] = change.IsMove ? new JsonObject { ["from"] = change.SourceServer, ["to"] = change.TargetServer } : null,
                            ["exportedAt"] = time.GetUtcNow(),
                        }, cancellationToken: ct);
                    }

                    await databases.ExportAsync(source, archive, ct);
                },
                ct);
            await using (var c = await from.OpenAsync(ct))
            {
                await TierChangeSql.For(from).DropMoveAsync(c, from, tenant.Id, ct);
            }

            await DropAsync(source, change, ct);
        }

        await db.WriteAsync((c, tx) => TierChangeStore.SetPhaseAsync(c, tx, change.OperationId, TierChangePhase.Retired, time.GetUtcNow()), ct);
        Log.Retired(logger, tenant.Id, change.OperationId, change.SourceIsolation.ToWire());
    }

    private async Task ProvisionAsync(Operation operation, Tenant tenant, TierChange change, CancellationToken ct)
    {
        // An earlier move's source still in its grace would share the target's place (back to the pool, say): retire it first.
        var earlier = await db.ReadAsync(c => TierChangeStore.DueAsync(c, time.GetUtcNow(), tenant.Id), ct);
        foreach (var pending in earlier.Where(e => e.OperationId != operation.Id))
        {
            await RetireAsync(pending, tenant, ct);
        }

        if (change is { IsMove: true, TargetServer: null })
        {
            // A move's servers are chosen once, and recorded before anything is made there, so a retry makes the
            // target on the same server and a rollback or retirement addresses each side explicitly.
            var current = Ref(tenant, change, target: false);
            var sourceServer = await databases.ServerOfAsync(current, ct);
            var targetServer = await databases.ChooseServerAsync(current, change.TargetCell!, ct);
            await db.WriteAsync((c, tx) => TierChangeStore.SetServersAsync(c, tx, operation.Id, sourceServer, targetServer, time.GetUtcNow()), ct);
            change = change with { SourceServer = sourceServer, TargetServer = targetServer };
        }

        if (change.SamePlace)
        {
            return; // Nothing to make: the data stays where it is.
        }

        var target = Ref(tenant, change, target: true);

        // The database, then every app's current release, without its seed: the copy brings the tenant's rows.
        var resources = await databases.CreateAsync(target, ct);
        var summary = new JsonObject();
        foreach (var release in await apps.CurrentReleasesAsync(ct))
        {
            var migrated = await migrator.ApplyAsync(target, release, ct);
            if (!migrated.Succeeded)
            {
                throw migrated.Retryable ? new InvalidOperationException(migrated.Error) : new PermanentStepException(migrated.Error!);
            }

            summary[release.App] = new JsonObject { ["release"] = release.Version, ["migrations"] = release.Migrations.Count, ["seeded"] = true };
        }

        if (summary.Count > 0)
        {
            resources["apps"] = summary;
        }

        await db.WriteAsync((c, tx) => TierChangeStore.SetTargetResourcesAsync(c, tx, operation.Id, resources, time.GetUtcNow()), ct);
    }

    private async Task CopyAsync(TenantRef source, TenantRef target, CancellationToken ct)
    {
        var (from, to, maps) = await PlanAsync(source, target, ct);
        var sql = TierChangeSql.For(from);
        await using var s = await from.OpenAsync(ct);
        await using var t = await to.OpenAsync(ct);
        var clock = Stopwatch.StartNew();
        var rows = 0L;
        foreach (var map in maps)
        {
            rows += await sql.CopyAsync(s, from, t, to, source.Id, map, options.Value.CopyBatchSize, token => Hook("copy-batch", source.Id, token), ct);
        }

        await CopySeedsAsync(s, from, t, to, source.Id, ct);
        Log.Copied(logger, source.Id, rows, maps.Count, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Which apps' seeds ran stays true at the target, so a seed never runs twice for the tenant.</summary>
    private static async Task CopySeedsAsync(DbConnection s, TenantDataPlace from, DbConnection t, TenantDataPlace to, Guid tenant, CancellationToken ct)
    {
        var schema = (string? place) => place is null ? "" : "\"" + place + "\".";
        const string Seeds = "tenantry_app_seeds";
        var sql = TierChangeSql.For(from);
        if (!(await sql.TablesAsync(s, from, ct)).Any(x => x.Name == Seeds) || !(await sql.TablesAsync(t, to, ct)).Any(x => x.Name == Seeds))
        {
            return;
        }

        var id = tenant.ToString();
        var postgres = from.Engine == "postgresql";
        var tenantMatch = postgres ? "tenant_id::text = @t" : "tenant_id = @t";
        var seeds = await s.QueryAsync(
            $"SELECT app, release_version, checksum, applied_at{(postgres ? "::text" : "")} FROM {schema(from.Schema)}{Seeds}{(from.Shared ? " WHERE " + tenantMatch : "")}",
            null, r => (App: r.GetString(0), Version: r.GetString(1), Checksum: r.GetString(2), At: r.GetString(3)), from.Shared ? [("@t", id)] : []);
        foreach (var seed in seeds)
        {
            var (columns, values) = to.Shared
                ? ("tenant_id, app, release_version, checksum, applied_at", postgres ? "@t::uuid, @app, @version, @checksum, @at::timestamptz" : "@t, @app, @version, @checksum, @at")
                : ("app, release_version, checksum, applied_at", postgres ? "@app, @version, @checksum, @at::timestamptz" : "@app, @version, @checksum, @at");
            (string, object?)[] parameters = [("@app", seed.App), ("@version", seed.Version), ("@checksum", seed.Checksum), ("@at", seed.At)];
            await t.ExecuteAsync(
                $"INSERT INTO {schema(to.Schema)}{Seeds} ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING", null,
                to.Shared ? [("@t", id), .. parameters] : parameters);
        }
    }

    /// <summary>
    /// A silo target's dedicated instances, started and healthy before the freeze (not routed to until the switch),
    /// so the switch under the freeze finds them running.
    /// </summary>
    private async Task ReadyComputeAsync(TierChange change, TenantRef target, CancellationToken ct)
    {
        if (change.TargetIsolation == IsolationModel.Silo && change.SourceIsolation != IsolationModel.Silo)
        {
            await compute.DeployAsync(target, ct);
        }
    }

    /// <summary>
    /// Applies the change log until at most <paramref name="backlog"/> changes are left (bounded in rounds); with
    /// <paramref name="keep"/> the applied changes stay in the log for the verify under the freeze.
    /// </summary>
    private async Task<int> CatchUpAsync(MovePlan plan, Guid tenant, int backlog, bool keep, CancellationToken ct)
    {
        var (from, to, maps) = plan;
        var sql = TierChangeSql.For(from);
        await using var s = await from.OpenAsync(ct);
        await using var t = await to.OpenAsync(ct);
        var applied = 0;
        for (var round = 0; round < 10_000; round++)
        {
            if (await sql.BacklogAsync(s, from, tenant, ct) <= backlog)
            {
                return applied;
            }

            applied += await sql.CatchUpAsync(s, from, t, to, tenant, maps, Math.Max(1000, options.Value.CopyBatchSize), keep, ct);
        }

        throw new InvalidOperationException("The tenant writes faster than catch-up applies its changes; trying again.");
    }

    /// <summary>
    /// The freeze: the routing table marks the tenant frozen (the gateway answers its writes 503), triggers at the
    /// source refuse them, and the last changes are applied: only the backlog catch-up left, so it lasts about as
    /// long as that backlog (<c>FreezeBacklog</c>) takes, whatever the tenant's size.
    /// </summary>
    private async Task FreezeAsync(Operation operation, MovePlan plan, Guid tenant, CancellationToken ct)
    {
        // The gateway hears of the freeze before the source refuses writes, so writes meet its 503 rather than the app's error.
        await SetRoutedPhaseAsync(operation.Id, TierChangePhase.Frozen, ct);
        await using (var c = await plan.From.OpenAsync(ct))
        {
            await TierChangeSql.For(plan.From).FreezeAsync(c, plan.From, tenant, [.. plan.Maps.Select(m => m.Source)], ct);
        }

        await Hook("frozen", tenant, ct);
        var clock = Stopwatch.StartNew();
        var applied = await CatchUpAsync(plan, tenant, 0, keep: true, ct);
        Log.Frozen(logger, tenant, applied, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>
    /// Every table, before the freeze and while the tenant writes: row count and checksum of the source in one
    /// snapshot against the target, leaving out the keys whose changes that snapshot shows still waiting (catch-up
    /// has applied every other change, and nothing else writes the target). Every change after this is applied
    /// and kept in the log, so the verify under the freeze need only check those keys.
    /// </summary>
    private async Task VerifyBulkAsync(MovePlan plan, Guid tenant, CancellationToken ct)
    {
        await Hook("bulk-verify", tenant, ct);
        var (from, to, maps) = plan;
        var sql = TierChangeSql.For(from);
        await using var s = await from.OpenAsync(ct);
        await using var t = await to.OpenAsync(ct);
        await using var snapshot = await sql.BeginSnapshotAsync(s, ct);
        var waiting = await sql.ChangedKeysAsync(s, snapshot, from, tenant, applied: false, ct);
        foreach (var map in maps)
        {
            var except = new KeyFilter(map.Key, waiting.GetValueOrDefault(map.Name) ?? [], Except: true);
            await CompareAsync(sql, s, snapshot, from, t, to, tenant, map, except, ct);
        }
    }

    /// <summary>Under the freeze: row count and checksum of the rows whose keys changed since the bulk verify, at the source and the target.</summary>
    private async Task VerifyAsync(MovePlan plan, Guid tenant, CancellationToken ct)
    {
        await Hook("verify", tenant, ct);
        var (from, to, maps) = plan;
        var sql = TierChangeSql.For(from);
        await using var s = await from.OpenAsync(ct);
        await using var t = await to.OpenAsync(ct);
        var changed = await sql.ChangedKeysAsync(s, null, from, tenant, applied: true, ct);
        foreach (var map in maps)
        {
            if (changed.TryGetValue(map.Name, out var keys))
            {
                await CompareAsync(sql, s, null, from, t, to, tenant, map, new KeyFilter(map.Key, keys, Except: false), ct);
            }
        }
    }

    /// <summary>The table's rows (those <paramref name="keys"/> picks) at the source and the target at once; a difference fails the move before the switch.</summary>
    private static async Task CompareAsync(TierChangeSql sql, DbConnection s, DbTransaction? snapshot, TenantDataPlace from, DbConnection t, TenantDataPlace to,
        Guid tenant, TableMap map, KeyFilter keys, CancellationToken ct)
    {
        var atSource = sql.ChecksumAsync(s, snapshot, from, tenant, map.Source, map.Compared, keys, ct);
        var atTarget = sql.ChecksumAsync(t, null, to, tenant, map.Target, map.Compared, keys, ct);
        var (a, b) = (await atSource, await atTarget);
        if (a != b)
        {
            throw new PermanentStepException(
                $"Table '{map.Name}' differs after the copy: {a.Rows} rows at the source, {b.Rows} at the target{(a.Rows == b.Rows ? ", with other contents" : "")}.");
        }
    }

    /// <summary>
    /// Dedicated compute first (a silo target's instances running and healthy), then one transaction: tier,
    /// isolation, database resources and route mode, the freeze lifted with the phase. The source keeps its freeze
    /// triggers: it stays read-only until it is retired.
    /// </summary>
    private async Task SwitchAsync(Operation operation, TierChange change, TenantRef source, TenantRef target, CancellationToken ct)
    {
        await Hook("switch", source.Id, ct);
        var computed = await compute.DeployAsync(target, ct);
        var resources = new JsonObject { ["database"] = change.TargetResources?.DeepClone() };
        if (change.SourceIsolation == IsolationModel.Silo || change.TargetIsolation == IsolationModel.Silo)
        {
            resources["compute"] = computed;
        }

        await db.WriteAsync(
            async (c, tx) =>
            {
                var now = time.GetUtcNow();
                await lifecycle.ChangeTierAsync(c, tx, source.Id, change.TargetTier, change.TargetIsolation, resources, now);
                await RouteStore.SetModeAsync(c, tx, source.Id, change.TargetIsolation == IsolationModel.Silo, now);
                await TierChangeStore.SwitchedAsync(c, tx, operation.Id, now + options.Value.SourceGrace, now);
                if (change.IsMove)
                {
                    await SwitchCellAsync(c, tx, operation, change, now);
                }

                await RouteChanges.NotifyAsync(c, tx);
            },
            ct);
        routes.Raise();
        Log.Switched(logger, source.Id, operation.Id, change.SourceIsolation.ToWire(), change.TargetIsolation.ToWire());
    }

    /// <summary>
    /// A move's part of the switch, in its transaction: the cell, the database server (when the data moved) and the
    /// tenant's <c>resources.placement</c> and <c>resources.database</c>, with the <c>tenant.moved</c> event.
    /// </summary>
    private async Task SwitchCellAsync(DbConnection c, DbTransaction tx, Operation operation, TierChange change, DateTimeOffset now)
    {
        var cell = cells.Find(change.TargetCell!) ?? throw new PermanentStepException($"Cell '{change.TargetCell}' is no longer in Tenantry:Cells.");

        // Room was checked when the move was accepted; moves into the same cell since then may have filled it.
        if (await CellPlacement.CheckRoomAsync(c, tx, cell) is { } full)
        {
            throw new PermanentStepException(full.Detail);
        }

        await CellPlacement.MoveAsync(c, tx, change.TenantId, cell.Name, now);
        var resources = new JsonObject { ["placement"] = new Placement(cell.Name, cell.Region).ToJson() };
        if (!change.SamePlace)
        {
            if (change.TargetServer is { } server)
            {
                await databases.SetServerAsync(c, tx, change.TenantId, server, now);
            }

            resources["database"] = change.TargetResources?.DeepClone();
        }

        await lifecycle.ChangeCellAsync(c, tx, change.TenantId, resources, operation.Id, now);
    }

    /// <summary>
    /// Drops one side's data: only the place when both sides are dedicated (bridge and silo share the tenant's
    /// credentials and server), else everything of that side.
    /// </summary>
    private Task DropAsync(TenantRef side, TierChange change, CancellationToken ct) =>
        change.SourceIsolation != IsolationModel.Pool && change.TargetIsolation != IsolationModel.Pool
            ? databases.DropPlaceAsync(side, ct)
            : databases.DeleteAsync(side, ct);

    private async Task<(TenantDataPlace Place, List<TableShape> Tables)> SourceAsync(TenantRef source, CancellationToken ct)
    {
        var from = await databases.PlaceAsync(source, ct) ?? throw new PermanentStepException("The tenant's current database is missing.");
        await using var c = await from.OpenAsync(ct);
        var tables = (await TierChangeSql.For(from).TablesAsync(c, from, ct)).Where(t => TableMap.Moves(from, t)).ToList();
        return (from, tables);
    }

    /// <summary>Both places and the tables that move, read once per step (the catalog and the provider's lookups are round trips, some under the freeze).</summary>
    private async Task<MovePlan> PlanAsync(TenantRef source, TenantRef target, CancellationToken ct)
    {
        var from = await databases.PlaceAsync(source, ct) ?? throw new PermanentStepException("The tenant's current database is missing.");
        var to = await databases.PlaceAsync(target, ct) ?? throw new PermanentStepException("The target database is missing; provision-target did not make it.");
        var sql = TierChangeSql.For(from);
        List<TableShape> sourceTables, targetTables;
        await using (var s = await from.OpenAsync(ct))
        {
            sourceTables = await sql.TablesAsync(s, from, ct);
        }

        await using (var t = await to.OpenAsync(ct))
        {
            targetTables = await sql.TablesAsync(t, to, ct);
        }

        return new MovePlan(from, to, TableMap.Plan(from, sourceTables, targetTables));
    }

    /// <summary>A phase the routing table shows (frozen or not), and the gateways told at once.</summary>
    private async Task SetRoutedPhaseAsync(Guid operationId, TierChangePhase phase, CancellationToken ct)
    {
        await db.WriteAsync(
            async (c, tx) =>
            {
                await TierChangeStore.SetPhaseAsync(c, tx, operationId, phase, time.GetUtcNow());
                await RouteChanges.NotifyAsync(c, tx);
            },
            ct);
        routes.Raise();
    }

    private Task Hook(string point, Guid tenant, CancellationToken ct) => hooks?.RunAsync(point, tenant, ct) ?? Task.CompletedTask;

    /// <summary>One side of the change; a move's sides are pinned to their recorded servers (each addressed explicitly while both exist).</summary>
    private static TenantRef Ref(Tenant tenant, TierChange change, bool target) => target
        ? new(tenant.Id, tenant.Slug, tenant.Name, change.TargetTier, change.TargetIsolation, tenant.AdminEmail) { Server = change.IsMove ? change.TargetServer : null }
        : new(tenant.Id, tenant.Slug, tenant.Name, change.SourceTier, change.SourceIsolation, tenant.AdminEmail) { Server = change.IsMove ? change.SourceServer : null };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Tenant {TenantId}: copied {Rows} rows of {Tables} tables in {Seconds:F1} s")]
        public static partial void Copied(ILogger logger, Guid tenantId, long rows, int tables, double seconds);

        [LoggerMessage(2, LogLevel.Information, "Tenant {TenantId}: tier change {OperationId} switched from {From} to {To}")]
        public static partial void Switched(ILogger logger, Guid tenantId, Guid operationId, string from, string to);

        [LoggerMessage(3, LogLevel.Warning, "Tenant {TenantId}: tier change {OperationId} failed at {Step} and was rolled back; the tenant stays where it was")]
        public static partial void RolledBack(ILogger logger, Guid tenantId, Guid operationId, string step);

        [LoggerMessage(6, LogLevel.Warning, "Tenant {TenantId}: the old copy of {OperationId} could not be retired now; the retirer tries again within a minute")]
        public static partial void RetireDeferred(ILogger logger, Guid tenantId, Guid operationId, Exception exception);

        [LoggerMessage(5, LogLevel.Information, "Tenant {TenantId}: writes frozen for the switch; the last {Changes} changes applied in {Milliseconds:F0} ms")]
        public static partial void Frozen(ILogger logger, Guid tenantId, int changes, double milliseconds);

        [LoggerMessage(4, LogLevel.Information, "Tenant {TenantId}: the {Isolation} source of tier change {OperationId} was exported and deleted")]
        public static partial void Retired(ILogger logger, Guid tenantId, Guid operationId, string isolation);
    }
}

/// <summary>Where a step's move reads and writes, and each table's way from one to the other.</summary>
internal sealed record MovePlan(TenantDataPlace From, TenantDataPlace To, List<TableMap> Maps);
