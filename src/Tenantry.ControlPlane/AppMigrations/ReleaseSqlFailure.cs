using Microsoft.Data.Sqlite;
using Npgsql;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>What one run over one target did: the migrations it applied, and where and why it stopped.</summary>
internal sealed record TargetRun(IReadOnlyList<string> Applied, int AlreadyApplied, string? FailedMigration, ReleaseSqlFailure? Failure);

/// <summary>A migration that does not keep the pool's rules once applied (checked in the catalog, before it commits).</summary>
internal sealed class PoolRulesException(IReadOnlyList<string> problems) : Exception(string.Join("; ", problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>A migration whose ledger row says it ran with other SQL.</summary>
internal sealed class ChangedMigrationException(string message) : Exception(message);

/// <summary>
/// Why applying SQL failed, said for an operator: the kind (<c>migration-failed</c>,
/// <c>pool-rules-violated</c>, <c>migration-changed</c>, <c>database-unavailable</c>,
/// <c>timed-out</c>), the database's own message with the line it points at (never the SQL text),
/// and whether trying again can help.
/// </summary>
internal sealed record ReleaseSqlFailure(string Kind, string Message, bool Retryable)
{
    public const string Failed = "migration-failed";
    public const string PoolRules = "pool-rules-violated";
    public const string Changed = "migration-changed";
    public const string Unavailable = "database-unavailable";
    public const string TimedOut = "timed-out";

    /// <param name="sql">The SQL that ran, to turn a PostgreSQL error position into a line.</param>
    /// <param name="timeLimit">The limit a timed-out check ran under, to name it.</param>
    public static ReleaseSqlFailure From(Exception exception, string? sql = null, TimeSpan? timeLimit = null) => exception switch
    {
        PoolRulesException e => new(PoolRules, e.Message, false),
        ChangedMigrationException e => new(Changed, e.Message, false),
        PostgresException { SqlState: PostgresErrorCodes.QueryCanceled } when timeLimit is { } limit =>
            new(TimedOut, $"did not finish within {limit.TotalSeconds:0} s", false),
        PostgresException e => new(e.SqlState.StartsWith("08", StringComparison.Ordinal) ? Unavailable : Failed, Describe(e, sql), e.IsTransient),
        NpgsqlException e => new(Unavailable, (e.InnerException ?? e).Message, true),
        SqliteException { SqliteErrorCode: 9 } when timeLimit is { } limit => new(TimedOut, $"did not finish within {limit.TotalSeconds:0} s", false),
        SqliteException { SqliteErrorCode: 5 or 6 } e => new(Unavailable, e.Message, true),
        SqliteException e => new(Failed, e.Message, false),
        TimeoutException or IOException => new(Unavailable, exception.Message, true),
        _ => new(Failed, exception.Message, false),
    };

    private static string Describe(PostgresException e, string? sql)
    {
        var where = Line(e, sql) is { } line ? $" (line {line})" : "";
        return $"{e.MessageText}{where} [SQLSTATE {e.SqlState}]";
    }

    /// <summary>The failure as one sentence naming where it happened: <paramref name="migrationId"/>, or the ledgers before any migration.</summary>
    public string Describe(string? migrationId) => (Kind, migrationId) switch
    {
        (PoolRules, _) => $"Migration '{migrationId}' breaks the pool's rules: {Message}.",
        (Changed, _) => $"M{Message[1..]}.",
        (Unavailable, null) => $"The database cannot be reached: {Message}",
        (Unavailable, _) => $"Migration '{migrationId}' could not finish, the database cannot be reached: {Message}",
        (_, null) => $"Preparing the migrations ledger failed: {Message}",
        _ => $"Migration '{migrationId}' failed: {Message}",
    };

    /// <summary>
    /// The line of <paramref name="sql"/> the error points at. Npgsql sends a script statement by
    /// statement, so the position counts from the start of the failed statement; find that first.
    /// </summary>
    private static int? Line(PostgresException e, string? sql)
    {
        if (sql is null || e.Position <= 0)
        {
            return null;
        }

        var statement = e.BatchCommand?.CommandText;
        var start = string.IsNullOrEmpty(statement) ? 0 : sql.IndexOf(statement, StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        var at = Math.Min(sql.Length, start + e.Position - 1);
        return sql.AsSpan(0, at).Count('\n') + 1;
    }
}
