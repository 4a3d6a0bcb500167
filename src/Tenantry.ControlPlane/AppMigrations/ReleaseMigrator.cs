using System.Data.Common;
using Microsoft.Extensions.Logging;
using Npgsql;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Providers;
using Tenantry.Data;
using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// Finds each tenant's target with the database provider (the pool for pool tenants, once per
/// fan-out) and hands it to the engine's runner; seeds through the tenant's own session.
/// </summary>
internal sealed partial class ReleaseMigrator(
    ITenantDatabaseProvider databases,
    ITenantDataSource data,
    TimeProvider time,
    ILogger<ReleaseMigrator> logger) : IReleaseMigrator
{
    public async Task<ReleaseMigrationResult> ApplyAsync(TenantRef tenant, AppRelease release, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        CheckRelease(release);
        var (target, run) = await RunAsync(tenant, release, cancellationToken);
        return Result(tenant, target, run, release);
    }

    public async Task<IReadOnlyList<ReleaseMigrationResult>> ApplyAsync(
        IReadOnlyList<TenantRef> tenants,
        AppRelease release,
        int parallelism,
        Func<ReleaseMigrationResult, CancellationToken, Task>? onTenant = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenants);
        ArgumentOutOfRangeException.ThrowIfLessThan(parallelism, 1);
        CheckRelease(release);
        var results = new ReleaseMigrationResult[tenants.Count];

        // Pool tenants share one target: the first of them to come up applies, the others wait for its run.
        Lazy<Task<(MigrationTarget?, TargetRun)>>? pool = null;
        if (tenants.FirstOrDefault(t => t.Isolation == IsolationModel.Pool) is { } first)
        {
            pool = new Lazy<Task<(MigrationTarget?, TargetRun)>>(() => RunAsync(first, release, cancellationToken));
        }

        await Parallel.ForEachAsync(
            Enumerable.Range(0, tenants.Count),
            new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken },
            async (i, token) =>
            {
                var tenant = tenants[i];
                var (target, run) = tenant.Isolation == IsolationModel.Pool ? await pool!.Value : await RunAsync(tenant, release, token);
                results[i] = Result(tenant, target, run, release);
                if (onTenant is not null)
                {
                    await onTenant(results[i], token);
                }
            });
        return results;
    }

    public async Task<ReleaseSeedResult> SeedAsync(TenantRef tenant, AppRelease release, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(release);
        if (release.Seed is not { } seed)
        {
            return new ReleaseSeedResult { TenantId = tenant.Id, Outcome = ReleaseSeedOutcome.NoSeed };
        }

        try
        {
            var target = await databases.MigrationTargetAsync(tenant, cancellationToken);
            var context = await databases.ConnectAsync(tenant, cancellationToken);
            if (target is null || context is null)
            {
                return new ReleaseSeedResult { TenantId = tenant.Id, Outcome = ReleaseSeedOutcome.NoDatabase };
            }

            await (target.Engine == DatabaseEngine.Postgres
                ? PostgresReleaseSql.EnsureLedgersAsync(target, cancellationToken)
                : SqliteReleaseSql.EnsureLedgersAsync(target, cancellationToken));
            if (await SeededAsync(context, release.App, cancellationToken))
            {
                return new ReleaseSeedResult { TenantId = tenant.Id, Outcome = ReleaseSeedOutcome.AlreadySeeded };
            }

            try
            {
                await using var session = await data.OpenSessionAsync(context, cancellationToken);
                var connection = await session.GetScopedConnectionAsync(cancellationToken);
                await using (var run = connection.CreateCommand())
                {
                    run.Transaction = session.Transaction;
                    run.CommandText = seed.Sql;
                    run.Parameters.Add(TenantIdParameter(run, context));
                    await run.ExecuteNonQueryAsync(cancellationToken);
                }

                await session.ExecuteAsync(
                    $"INSERT INTO {ReleaseLedgers.Seeds} (app, release_version, checksum, applied_at) VALUES (@app, @version, @checksum, @at)",
                    [("@app", release.App), ("@version", release.Version), ("@checksum", seed.Checksum), ("@at", time.GetUtcNow())],
                    cancellationToken);
                await session.CommitAsync(cancellationToken);
            }
            catch (DbException)
            {
                if (await SeededAsync(context, release.App, cancellationToken))
                {
                    // A concurrent seeder recorded it first; its run stands and this one rolled back.
                    return new ReleaseSeedResult { TenantId = tenant.Id, Outcome = ReleaseSeedOutcome.AlreadySeeded };
                }

                throw;
            }

            Log.Seeded(logger, tenant.Id, release.App, release.Version);
            return new ReleaseSeedResult { TenantId = tenant.Id, Outcome = ReleaseSeedOutcome.Seeded };
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var failure = ReleaseSqlFailure.From(e, seed.Sql);
            Log.SeedFailed(logger, tenant.Id, release.App, release.Version, failure.Message);
            return new ReleaseSeedResult
            {
                TenantId = tenant.Id,
                Outcome = ReleaseSeedOutcome.Failed,
                Error = $"The seed of {release.App} {release.Version} failed: {failure.Message}",
                Retryable = failure.Retryable,
            };
        }
    }

    private async Task<bool> SeededAsync(TenantDataContext context, string app, CancellationToken cancellationToken)
    {
        await using var session = await data.OpenReadSessionAsync(context, cancellationToken);
        return await session.ScalarAsync($"SELECT 1 FROM {ReleaseLedgers.Seeds} WHERE app = @app", [("@app", app)], cancellationToken) is not null;
    }

    /// <summary>The seed's <c>@tenant_id</c>: a uuid on PostgreSQL, its lowercase text on SQLite (as the guard stamps it).</summary>
    private static DbParameter TenantIdParameter(DbCommand command, TenantDataContext context)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = command is NpgsqlCommand ? "tenant_id" : "@tenant_id";
        parameter.Value = command is NpgsqlCommand ? context.TenantId : context.TenantId.ToString();
        return parameter;
    }

    private async Task<(MigrationTarget? Target, TargetRun Run)> RunAsync(TenantRef tenant, AppRelease release, CancellationToken cancellationToken)
    {
        MigrationTarget? target;
        try
        {
            target = await databases.MigrationTargetAsync(tenant, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Where the tenant lives could not be told (its server left the configuration, the store did not answer).
            return (null, new TargetRun([], 0, null, ReleaseSqlFailure.From(e) with { Retryable = e is not PermanentStepException }));
        }

        if (target is null)
        {
            return (null, new TargetRun([], 0, null, null));
        }

        var run = target.Engine == DatabaseEngine.Postgres
            ? await PostgresReleaseSql.ApplyAsync(target, ReleaseRef.Of(release), cancellationToken)
            : await SqliteReleaseSql.ApplyAsync(target, ReleaseRef.Of(release), time, null, cancellationToken);
        foreach (var id in run.Applied)
        {
            Log.Applied(logger, tenant.Id, target.Name, release.App, release.Version, id);
        }

        if (run.Failure is { } failure)
        {
            Log.Failed(logger, tenant.Id, target.Name, release.App, release.Version, run.FailedMigration, failure.Message);
        }

        return (target, run);
    }

    private static ReleaseMigrationResult Result(TenantRef tenant, MigrationTarget? target, TargetRun run, AppRelease release)
    {
        var where = target?.Name ?? (tenant.Isolation == IsolationModel.Pool ? "pool" : tenant.Slug);
        if (run.Failure is { } failure)
        {
            return new ReleaseMigrationResult
            {
                TenantId = tenant.Id,
                Target = where,
                Outcome = ReleaseMigrationOutcome.Failed,
                Applied = run.Applied,
                AlreadyApplied = run.AlreadyApplied,
                FailedMigration = run.FailedMigration,
                Error = $"{release.App} {release.Version}: {failure.Describe(run.FailedMigration)}",
                Retryable = failure.Retryable,
            };
        }

        return new ReleaseMigrationResult
        {
            TenantId = tenant.Id,
            Target = where,
            Outcome = target is null ? ReleaseMigrationOutcome.NoDatabase : run.Applied.Count > 0 ? ReleaseMigrationOutcome.Applied : ReleaseMigrationOutcome.UpToDate,
            Applied = run.Applied,
            AlreadyApplied = run.AlreadyApplied,
        };
    }

    private static void CheckRelease(AppRelease release)
    {
        ArgumentNullException.ThrowIfNull(release);
        if (release.Migrations.Any(m => m.Sql.Length == 0))
        {
            throw new ArgumentException("The release is listed without its migrations' SQL; read it with IAppRegistry.GetReleaseAsync.", nameof(release));
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4300, Level = LogLevel.Information, Message = "Tenant {TenantId}: migration {Migration} of {App} {Version} applied to {Target}")]
        public static partial void Applied(ILogger logger, Guid tenantId, string target, string app, string version, string migration);

        [LoggerMessage(EventId = 4301, Level = LogLevel.Error, Message = "Tenant {TenantId}: migrating {Target} to {App} {Version} failed at {Migration}: {Error}")]
        public static partial void Failed(ILogger logger, Guid tenantId, string target, string app, string version, string? migration, string error);

        [LoggerMessage(EventId = 4302, Level = LogLevel.Information, Message = "Tenant {TenantId}: seed of {App} {Version} ran")]
        public static partial void Seeded(ILogger logger, Guid tenantId, string app, string version);

        [LoggerMessage(EventId = 4303, Level = LogLevel.Error, Message = "Tenant {TenantId}: seed of {App} {Version} failed: {Error}")]
        public static partial void SeedFailed(ILogger logger, Guid tenantId, string app, string version, string error);
    }
}
