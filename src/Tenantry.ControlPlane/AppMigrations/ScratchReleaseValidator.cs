using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Providers;
using Tenantry.Data;
using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// Tries a release's migrations, then its seed, on a throw-away pool-shaped database of the engine
/// tenants use, before the release is stored, so broken SQL is refused at creation instead of
/// failing at each tenant. PostgreSQL: a new schema on the pool server inside one transaction that
/// is rolled back whatever happens (nothing to clean after a crash); SQLite: a new file, deleted
/// after, with the seed run through the pool guard as a tenant session. Every statement and the
/// whole check are bounded by <see cref="Limit"/>.
/// </summary>
internal sealed class ScratchReleaseValidator(ITenantDatabaseProvider databases, TimeProvider time) : IReleaseValidator
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    public async Task<ApiError?> ValidateAsync(IReadOnlyList<ReleaseMigration> migrations, ReleaseSeed? seed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(migrations);
        var scratch = databases.ScratchTarget();
        var failure = scratch.Engine == DatabaseEngine.Postgres
            ? await PostgresReleaseSql.TryAsync(scratch, migrations, seed, Limit, cancellationToken)
            : await TrySqliteAsync(scratch, migrations, seed, cancellationToken);
        return failure is null ? null : Problem(failure, scratch.Engine == DatabaseEngine.Postgres ? "PostgreSQL" : "SQLite");
    }

    private async Task<ScratchFailure?> TrySqliteAsync(MigrationTarget scratch, IReadOnlyList<ReleaseMigration> migrations, ReleaseSeed? seed, CancellationToken cancellationToken)
    {
        try
        {
            var run = await SqliteReleaseSql.ApplyAsync(scratch, new ReleaseRef("scratch", "0.0.0", migrations), time, Limit, cancellationToken);
            if (run.Failure is { } failure)
            {
                return new ScratchFailure(run.FailedMigration, false, failure);
            }

            if (seed is null)
            {
                return null;
            }

            // The seed as a pool tenant runs it: through the guard, which stamps tenant_id and refuses DDL.
            await using var source = TenantDataSource.Create();
            var context = new TenantDataContext { TenantId = Guid.NewGuid(), Slug = "scratch", Isolation = IsolationModel.Pool, Target = new SqlitePoolTarget(scratch.Connection) };
            try
            {
                await using var session = await source.OpenSessionAsync(context, cancellationToken);
                var connection = (SqliteConnection)await session.GetScopedConnectionAsync(cancellationToken);
                using var deadline = new SqliteDeadline(connection, time, Limit);
                await using var command = connection.CreateCommand();
                command.Transaction = (SqliteTransaction)session.Transaction;
                command.CommandText = seed.Sql;
                command.Parameters.AddWithValue("@tenant_id", context.TenantId.ToString());
                await command.ExecuteNonQueryAsync(cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return new ScratchFailure(null, true, ReleaseSqlFailure.From(e, seed.Sql, Limit));
            }

            return null;
        }
        finally
        {
            foreach (var file in new[] { scratch.Connection, scratch.Connection + "-wal", scratch.Connection + "-shm", scratch.Connection + "-journal" })
            {
                File.Delete(file);
            }
        }
    }

    private static ApiError Problem(ScratchFailure failure, string engine)
    {
        var (kind, message, id) = (failure.Failure.Kind, failure.Failure.Message, failure.MigrationId);
        if (kind == ReleaseSqlFailure.Unavailable || (id is null && !failure.InSeed))
        {
            return new(StatusCodes.Status503ServiceUnavailable, "tenant-database-unavailable", "The tenants' database cannot be reached.",
                $"The release's SQL could not be tried on a scratch {engine} database: {message}. Nothing was stored; try again.");
        }

        if (failure.InSeed)
        {
            return new(StatusCodes.Status422UnprocessableEntity, "seed-failed", "The seed failed.",
                $"The seed failed on a scratch {engine} database, run as a pool tenant after the migrations: {message}. Nothing was stored.");
        }

        return kind == ReleaseSqlFailure.PoolRules
            ? new(StatusCodes.Status422UnprocessableEntity, "pool-rules-violated", "A migration breaks the pool's rules.",
                $"Migration '{id}', applied to a scratch {engine} database, breaks the pool's rules: {message}. Nothing was stored.")
            : new(StatusCodes.Status422UnprocessableEntity, "migration-failed", "A migration failed.",
                $"Migration '{id}' failed on a scratch {engine} database: {message}. Nothing was stored; fix it and create the release again.");
    }
}
