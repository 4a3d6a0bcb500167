using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// A release's migrations: given inline or read from a folder of numbered <c>.sql</c> files, then
/// checked to be numbered, unique, ascending, forward only against the previous release, and
/// (pool model) to create no table without <c>tenant_id</c>.
/// </summary>
public static class ReleaseMigrations
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

    /// <summary>Why the set itself is not acceptable: ids repeated or not ascending, or a pooled table without <c>tenant_id</c>.</summary>
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

    internal static ApiError Unprocessable(string kind, string title, string detail) =>
        new(StatusCodes.Status422UnprocessableEntity, kind, title, detail);
}
