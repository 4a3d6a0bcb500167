using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// A release's migrations: given inline or read from a folder of numbered <c>.sql</c> files, then
/// checked to be numbered, unique, ascending, forward only against the previous release, free of
/// transaction control, and (pool model) to create no table without <c>tenant_id</c>. Its seed is
/// given inline or as a file and checked alike.
/// </summary>
public static partial class ReleaseMigrations
{
    public const int MaxFileBytes = 1024 * 1024;
    public const int MaxFolderBytes = 8 * 1024 * 1024;

    /// <summary>SHA-256 (lowercase hex) of the SQL with CRLF line endings as LF, so a checkout on another OS is not a change.</summary>
    public static string Checksum(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sql.ReplaceLineEndings("\n"))));
    }

    /// <summary>Inline migrations with their field errors (missing id or SQL, id not numbered).</summary>
    public static IReadOnlyList<ReleaseMigration> FromRequest(IReadOnlyList<MigrationRequest?> migrations, Dictionary<string, string[]> errors)
    {
        ArgumentNullException.ThrowIfNull(migrations);
        ArgumentNullException.ThrowIfNull(errors);
        var result = new List<ReleaseMigration>();
        if (migrations.Count > AppRules.MaxMigrations)
        {
            errors["migrations"] = [$"A release has at most {AppRules.MaxMigrations} migrations."];
            return result;
        }

        for (var i = 0; i < migrations.Count; i++)
        {
            var m = migrations[i];
            if (AppRules.MigrationNumber(m?.Id) is null)
            {
                errors[$"migrations[{i}].id"] = ["A migration id is numbered: digits, '_', then letters, digits, '_' or '-' (001_create_orders), at most 100 characters."];
            }

            if (string.IsNullOrWhiteSpace(m?.Sql))
            {
                errors[$"migrations[{i}].sql"] = ["A migration's SQL is not empty."];
            }

            if (m?.Id is { } id && m.Sql is { } sql)
            {
                result.Add(new ReleaseMigration(id, sql, Checksum(sql)));
            }
        }

        return result;
    }

    /// <summary>The <c>.sql</c> files directly in <paramref name="folder"/>, each named by its id (<c>001_create_orders.sql</c>).</summary>
    public static async Task<(IReadOnlyList<ReleaseMigration> Migrations, ApiError? Error)> ReadFolderAsync(string folder, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
        {
            return ([], Unprocessable("migrations-path-not-found", "The migrations folder does not exist.", $"migrationsPath '{folder}' is not a folder on the control plane's machine."));
        }

        var result = new List<ReleaseMigration>();
        long total = 0;
        try
        {
            foreach (var file in Directory.EnumerateFiles(folder, "*.sql", SearchOption.TopDirectoryOnly).Order(StringComparer.Ordinal))
            {
                var id = Path.GetFileNameWithoutExtension(file);
                if (AppRules.MigrationNumber(id) is null)
                {
                    return ([], ApiError.Validation("migrationsPath", $"'{Path.GetFileName(file)}' is not a numbered migration (001_create_orders.sql)."));
                }

                if (result.Count == AppRules.MaxMigrations)
                {
                    return ([], ApiError.Validation("migrationsPath", $"A release has at most {AppRules.MaxMigrations} migrations."));
                }

                var length = new FileInfo(file).Length;
                total += length;
                if (length > MaxFileBytes || total > MaxFolderBytes)
                {
                    return ([], ApiError.Validation("migrationsPath", $"A migration file is at most {MaxFileBytes} bytes, a folder at most {MaxFolderBytes} bytes."));
                }

                var sql = await File.ReadAllTextAsync(file, cancellationToken);
                if (string.IsNullOrWhiteSpace(sql))
                {
                    return ([], ApiError.Validation("migrationsPath", $"'{Path.GetFileName(file)}' is empty; a migration's SQL is not empty."));
                }

                result.Add(new ReleaseMigration(id, sql, Checksum(sql)));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ([], Unprocessable("migrations-path-not-readable", "The migrations folder could not be read.", $"migrationsPath '{folder}': {ex.Message}"));
        }

        // File names sort as text; the numbers decide the order (9_x before 10_y).
        return ([.. result.OrderBy(m => AppRules.MigrationNumber(m.Id)).ThenBy(m => m.Id, StringComparer.Ordinal)], null);
    }

    /// <summary>The seed given inline (<paramref name="seed"/>) or as a file (<paramref name="seedPath"/>, read later by <see cref="ReadSeedFileAsync"/>), with its field errors.</summary>
    public static ReleaseSeed? SeedFromRequest(string? seed, string? seedPath, Dictionary<string, string[]> errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (seed is not null && seedPath is not null)
        {
            errors["seedPath"] = ["Give seed or seedPath, not both."];
            return null;
        }

        if (seedPath is not null && (seedPath.Length == 0 || !Path.IsPathFullyQualified(seedPath) || AppRules.HasControl(seedPath)))
        {
            errors["seedPath"] = ["seedPath is an absolute file path on the control plane's machine (the CLI resolves a manifest's relative path)."];
            return null;
        }

        if (seed is null)
        {
            return null;
        }

        if (string.IsNullOrWhiteSpace(seed))
        {
            errors["seed"] = ["A seed's SQL is not empty."];
            return null;
        }

        if (Encoding.UTF8.GetByteCount(seed) > MaxFileBytes)
        {
            errors["seed"] = [$"A seed is at most {MaxFileBytes} bytes."];
            return null;
        }

        return new ReleaseSeed(seed, Checksum(seed));
    }

    /// <summary>The seed in the <c>.sql</c> file at <paramref name="path"/>.</summary>
    public static async Task<(ReleaseSeed? Seed, ApiError? Error)> ReadSeedFileAsync(string path, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            return (null, Unprocessable("seed-path-not-found", "The seed file does not exist.", $"seedPath '{path}' is not a file on the control plane's machine."));
        }

        try
        {
            if (new FileInfo(path).Length > MaxFileBytes)
            {
                return (null, ApiError.Validation("seedPath", $"A seed file is at most {MaxFileBytes} bytes."));
            }

            var sql = await File.ReadAllTextAsync(path, cancellationToken);
            return string.IsNullOrWhiteSpace(sql)
                ? (null, ApiError.Validation("seedPath", $"'{Path.GetFileName(path)}' is empty; a seed's SQL is not empty."))
                : (new ReleaseSeed(sql, Checksum(sql)), null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, Unprocessable("seed-path-not-readable", "The seed file could not be read.", $"seedPath '{path}': {ex.Message}"));
        }
    }

    /// <summary>Why the seed is not acceptable: it controls its own transaction.</summary>
    public static ApiError? CheckSeed(ReleaseSeed? seed) =>
        seed is not null && TransactionControl(seed.Sql) is { } statement
            ? Unprocessable("transaction-control", "The seed controls its own transaction.",
                $"The seed runs {statement}; Tenantry runs the seed in one transaction with the record that it ran, so it cannot begin, end or split one itself.")
            : null;

    /// <summary>Why the set itself is not acceptable: ids repeated or not ascending, transaction control, or a pooled table without <c>tenant_id</c>.</summary>
    public static ApiError? Check(IReadOnlyList<ReleaseMigration> migrations)
    {
        ArgumentNullException.ThrowIfNull(migrations);
        var seen = new HashSet<int>();
        var previous = -1;
        foreach (var m in migrations)
        {
            var number = AppRules.MigrationNumber(m.Id)!.Value;
            if (!seen.Add(number))
            {
                return Unprocessable("migrations-out-of-order", "Migration numbers repeat.", $"Migration '{m.Id}' repeats number {number}; each migration has its own number.");
            }

            if (number < previous)
            {
                return Unprocessable("migrations-out-of-order", "Migrations are not in ascending order.", $"Migration '{m.Id}' comes after a migration with a higher number; list them in ascending order.");
            }

            previous = number;
        }

        foreach (var m in migrations)
        {
            if (TransactionControl(m.Sql) is { } statement)
            {
                return Unprocessable("transaction-control", "A migration controls its own transaction.",
                    $"Migration '{m.Id}' runs {statement}; Tenantry runs each migration in one transaction with its ledger row, so a migration cannot begin, end or split one itself.");
            }

            if (PoolTableCheck.TablesWithoutTenantId(m.Sql) is [var table, ..])
            {
                return Unprocessable("pool-table-without-tenant-id", "A table has no tenant_id column.",
                    $"Migration '{m.Id}' creates table '{table}' without a '{PoolTableCheck.TenantColumn}' column; pooled tenants share tables, so every table carries it.");
            }
        }

        return null;
    }

    /// <summary>Why <paramref name="next"/> does not extend <paramref name="previous"/>: each earlier migration stays, unchanged and in place.</summary>
    public static ApiError? CheckForwardOnly(AppRelease previous, IReadOnlyList<ReleaseMigration> next)
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(next);
        for (var i = 0; i < previous.Migrations.Count; i++)
        {
            var before = previous.Migrations[i];
            if (i >= next.Count)
            {
                return Changed($"Migration '{before.Id}' of release {previous.Version} is missing; a release keeps every migration of the release before it.");
            }

            if (!string.Equals(next[i].Id, before.Id, StringComparison.Ordinal))
            {
                return Changed($"Migration {i + 1} is '{next[i].Id}' but was '{before.Id}' in release {previous.Version}; earlier migrations keep their place, new ones go at the end.");
            }

            if (!string.Equals(next[i].Checksum, before.Checksum, StringComparison.Ordinal))
            {
                return Changed($"Migration '{before.Id}' differs from release {previous.Version} (checksum {next[i].Checksum[..12]}… instead of {before.Checksum[..12]}…); a migration that ran cannot change: add a new one.");
            }
        }

        return null;

        static ApiError Changed(string detail) => Unprocessable("migrations-changed", "Migrations are forward only.", detail);
    }

    [GeneratedRegex(@"^\s*(?<word>[A-Za-z]+)(?:\s+(?<next>[A-Za-z]+))?", RegexOptions.CultureInvariant)]
    private static partial Regex LeadingWords();

    // Bodies that hold statements of their own up to an END: SQLite triggers, SQL-standard function bodies.
    [GeneratedRegex(@"^\s*CREATE\b.*\bTRIGGER\b.*\bBEGIN\b|\bBEGIN\s+ATOMIC\b", RegexOptions.IgnoreCase | RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex OpensBody();

    /// <summary>
    /// The first statement of <paramref name="sql"/> that begins, ends or splits a transaction
    /// (BEGIN, COMMIT, ROLLBACK, END, START, SAVEPOINT, RELEASE, ABORT, PREPARE TRANSACTION), or
    /// null. Comments, literals and dollar-quoted bodies do not count, nor does the END of a trigger body.
    /// </summary>
    public static string? TransactionControl(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var inBody = false;
        foreach (var statement in PoolTableCheck.Blank(sql).Split(';'))
        {
            var match = LeadingWords().Match(statement);
            if (!match.Success)
            {
                continue;
            }

            var word = match.Groups["word"].Value.ToUpperInvariant();
            if (inBody)
            {
                inBody = word != "END";
                continue;
            }

            if (OpensBody().IsMatch(statement))
            {
                inBody = true;
                continue;
            }

            switch (word)
            {
                case "BEGIN" or "COMMIT" or "ROLLBACK" or "END" or "START" or "SAVEPOINT" or "RELEASE" or "ABORT":
                    return word;
                case "PREPARE" when match.Groups["next"].Value.Equals("TRANSACTION", StringComparison.OrdinalIgnoreCase):
                    return "PREPARE TRANSACTION";
            }
        }

        return null;
    }

    internal static ApiError Unprocessable(string kind, string title, string detail) =>
        new(StatusCodes.Status422UnprocessableEntity, kind, title, detail);
}
