using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// The app registry's tables: apps, their immutable releases and each release's migrations (in
/// order, with their SQL and checksum). The only place with their SQL. Callers own the transaction.
/// </summary>
internal static class AppStore
{
    /// <summary>The tables this store owns, in the portable SQL both engines share.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Apps", """

        -- Apps (Apps/): registered applications, their releases and the releases' migrations.
        CREATE TABLE IF NOT EXISTS apps (
            name TEXT PRIMARY KEY,
            route_prefix TEXT NOT NULL,
            route_key TEXT NOT NULL UNIQUE,
            health_path TEXT NOT NULL,
            shared_instances INTEGER NOT NULL,
            current_release TEXT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

        CREATE TABLE IF NOT EXISTS app_releases (
            app TEXT NOT NULL REFERENCES apps(name),
            release_version TEXT NOT NULL,
            seq INTEGER NOT NULL,
            process TEXT NOT NULL,
            image TEXT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            seed_sql TEXT NULL,
            seed_checksum TEXT NULL,
            PRIMARY KEY (app, release_version),
            UNIQUE (app, seq)
        );

        CREATE TABLE IF NOT EXISTS app_release_migrations (
            app TEXT NOT NULL,
            release_version TEXT NOT NULL,
            ordinal INTEGER NOT NULL,
            id TEXT NOT NULL,
            checksum TEXT NOT NULL,
            sql TEXT NOT NULL,
            PRIMARY KEY (app, release_version, ordinal),
            FOREIGN KEY (app, release_version) REFERENCES app_releases(app, release_version)
        );
        """).WithAddedColumns(("app_releases", "seed_sql", "TEXT NULL"), ("app_releases", "seed_checksum", "TEXT NULL"));

    private static readonly JsonSerializerOptions ProcessJson = new(JsonSerializerDefaults.Web);

    private const string AppColumns = "name, route_prefix, health_path, shared_instances, current_release, created_at, updated_at";

    public static async Task<App?> FindAsync(DbConnection c, DbTransaction? tx, string name) =>
        (await c.QueryAsync($"SELECT {AppColumns} FROM apps WHERE name = @name", tx, ReadApp, ("@name", name))).FirstOrDefault();

    /// <summary>Apps by name, after <paramref name="after"/> when given.</summary>
    public static Task<List<App>> ListAsync(DbConnection c, string? after, int limit, DbTransaction? tx = null) => c.QueryAsync(
        $"SELECT {AppColumns} FROM apps" + (after is null ? "" : " WHERE name > @after") + " ORDER BY name LIMIT @limit",
        tx, ReadApp, ("@after", after), ("@limit", limit));

    /// <summary>The app that claims this route key, if any.</summary>
    public static async Task<string?> RouteOwnerAsync(DbConnection c, DbTransaction? tx, string routeKey) =>
        await c.ScalarAsync("SELECT name FROM apps WHERE route_key = @key", tx, ("@key", routeKey)) as string;

    public static Task InsertAsync(DbConnection c, DbTransaction tx, App app) => c.ExecuteAsync(
        """
        INSERT INTO apps (name, route_prefix, route_key, health_path, shared_instances, current_release, created_at, updated_at)
        VALUES (@name, @prefix, @key, @health, @instances, NULL, @now, @now)
        """,
        tx, ("@name", app.Name), ("@prefix", app.RoutePrefix), ("@key", AppRules.RouteKey(app.RoutePrefix)),
        ("@health", app.HealthPath), ("@instances", app.SharedInstances), ("@now", app.CreatedAt));

    public static Task SetCurrentReleaseAsync(DbConnection c, DbTransaction tx, string app, string version, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE apps SET current_release = @version, updated_at = @now WHERE name = @name",
        tx, ("@name", app), ("@version", version), ("@now", now));

    public static async Task<bool> ReleaseExistsAsync(DbConnection c, DbTransaction? tx, string app, string version) =>
        await c.ScalarAsync("SELECT 1 FROM app_releases WHERE app = @app AND release_version = @version", tx, ("@app", app), ("@version", version)) is not null;

    /// <summary>The app's most recently created release, with its migrations; null before its first.</summary>
    public static async Task<AppRelease?> LatestReleaseAsync(DbConnection c, DbTransaction? tx, string app)
    {
        var version = await c.ScalarAsync(
            "SELECT release_version FROM app_releases WHERE app = @app ORDER BY seq DESC LIMIT 1", tx, ("@app", app)) as string;
        return version is null ? null : await GetReleaseAsync(c, tx, app, version);
    }

    /// <summary>The current release of every app that has one, by app name, with its migrations' SQL.</summary>
    public static async Task<List<AppRelease>> CurrentReleasesAsync(DbConnection c)
    {
        var current = await c.QueryAsync(
            "SELECT name, current_release FROM apps WHERE current_release IS NOT NULL ORDER BY name", null, r => (App: r.GetString(0), Version: r.GetString(1)));
        var releases = new List<AppRelease>();
        foreach (var (app, version) in current)
        {
            releases.Add(await GetReleaseAsync(c, null, app, version) ?? throw new InvalidOperationException($"App '{app}' names release {version} as current, which does not exist."));
        }

        return releases;
    }

    public static async Task<AppRelease?> GetReleaseAsync(DbConnection c, DbTransaction? tx, string app, string version)
    {
        var release = (await c.QueryAsync(
            $"SELECT {ReleaseColumns} FROM app_releases WHERE app = @app AND release_version = @version",
            tx, ReadRelease, ("@app", app), ("@version", version))).FirstOrDefault();
        if (release is null)
        {
            return null;
        }

        var migrations = await c.QueryAsync(
            "SELECT id, sql, checksum FROM app_release_migrations WHERE app = @app AND release_version = @version ORDER BY ordinal",
            tx, r => new ReleaseMigration(r.GetString(0), r.GetString(1), r.GetString(2)), ("@app", app), ("@version", version));
        return release with { Migrations = migrations };
    }

    /// <summary>The app's releases in order of creation, after sequence <paramref name="after"/>, with migration ids and checksums (no SQL).</summary>
    public static async Task<List<AppRelease>> ListReleasesAsync(DbConnection c, string app, long after, int limit)
    {
        var releases = await c.QueryAsync(
            $"SELECT {ReleaseColumns} FROM app_releases WHERE app = @app AND seq > @after ORDER BY seq LIMIT @limit",
            null, ReadRelease, ("@app", app), ("@after", after), ("@limit", limit));
        if (releases.Count == 0)
        {
            return releases;
        }

        var migrations = (await c.QueryAsync(
            """
            SELECT m.release_version, m.id, m.checksum FROM app_release_migrations m
            JOIN app_releases r ON r.app = m.app AND r.release_version = m.release_version
            WHERE m.app = @app AND r.seq > @after AND r.seq <= @last ORDER BY m.release_version, m.ordinal
            """,
            null, r => (Version: r.GetString(0), Migration: new ReleaseMigration(r.GetString(1), "", r.GetString(2))),
            ("@app", app), ("@after", after), ("@last", releases[^1].Sequence)))
            .GroupBy(m => m.Version, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<ReleaseMigration>)[.. g.Select(m => m.Migration)], StringComparer.Ordinal);
        return [.. releases.Select(r => r with { Migrations = migrations.GetValueOrDefault(r.Version) ?? [] })];
    }

    public static async Task InsertReleaseAsync(DbConnection c, DbTransaction tx, AppRelease release)
    {
        var seq = Convert.ToInt64(
            await c.ScalarAsync("SELECT COALESCE(MAX(seq), 0) + 1 FROM app_releases WHERE app = @app", tx, ("@app", release.App)),
            CultureInfo.InvariantCulture);
        await c.ExecuteAsync(
            """
            INSERT INTO app_releases (app, release_version, seq, process, image, created_by, created_at, seed_sql, seed_checksum)
            VALUES (@app, @version, @seq, @process, @image, @by, @now, @seed, @seedChecksum)
            """,
            tx, ("@app", release.App), ("@version", release.Version), ("@seq", seq), ("@process", JsonSerializer.Serialize(release.Process, ProcessJson)),
            ("@image", release.Image), ("@by", release.CreatedBy), ("@now", release.CreatedAt), ("@seed", release.Seed?.Sql), ("@seedChecksum", release.Seed?.Checksum));
        for (var i = 0; i < release.Migrations.Count; i++)
        {
            var m = release.Migrations[i];
            await c.ExecuteAsync(
                """
                INSERT INTO app_release_migrations (app, release_version, ordinal, id, checksum, sql)
                VALUES (@app, @version, @ordinal, @id, @checksum, @sql)
                """,
                tx, ("@app", release.App), ("@version", release.Version), ("@ordinal", i), ("@id", m.Id), ("@checksum", m.Checksum), ("@sql", m.Sql));
        }
    }

    private const string ReleaseColumns = "app, release_version, seq, process, image, created_by, created_at, seed_sql, seed_checksum";

    private static App ReadApp(DbDataReader r) => new()
    {
        Name = r.GetString(0),
        RoutePrefix = r.GetString(1),
        HealthPath = r.GetString(2),
        SharedInstances = Convert.ToInt32(r.GetValue(3), CultureInfo.InvariantCulture),
        CurrentRelease = r.ReadStringOrNull(4),
        CreatedAt = r.ReadTime(5),
        UpdatedAt = r.ReadTime(6),
    };

    private static AppRelease ReadRelease(DbDataReader r) => new()
    {
        App = r.GetString(0),
        Version = r.GetString(1),
        Sequence = Convert.ToInt64(r.GetValue(2), CultureInfo.InvariantCulture),
        Process = JsonSerializer.Deserialize<ReleaseProcess>(r.GetString(3), ProcessJson)!,
        Image = r.ReadStringOrNull(4),
        CreatedBy = r.GetString(5),
        CreatedAt = r.ReadTime(6),
        Migrations = [],
        Seed = r.ReadStringOrNull(7) is { } seed ? new ReleaseSeed(seed, r.GetString(8)) : null,
    };
}
