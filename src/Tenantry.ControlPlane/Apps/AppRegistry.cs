using Microsoft.Extensions.Configuration;
using System.Data.Common;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Apps;

/// <summary>The registered applications and their releases, as the features that run them read them.</summary>
public interface IAppRegistry
{
    Task<App?> FindAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>A release with its migrations' SQL, in order; null when the app or the version does not exist.</summary>
    Task<AppRelease?> GetReleaseAsync(string app, string version, CancellationToken cancellationToken = default);

    /// <summary>Every registered app, by name.</summary>
    Task<IReadOnlyList<App>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>The current release of every app that has one (what new tenants start on), by app name, with its SQL.</summary>
    Task<IReadOnlyList<AppRelease>> CurrentReleasesAsync(CancellationToken cancellationToken = default);
}

/// <summary>Registers apps and creates releases: validates at the edge, writes with its audit event in one transaction.</summary>
public sealed partial class AppRegistry(IControlPlaneDatabase db, IReleaseValidator validator, TimeProvider time, ILogger<AppRegistry> logger, IConfiguration? configuration = null) : IAppRegistry
{
    public Task<App?> FindAsync(string name, CancellationToken cancellationToken = default) =>
        db.ReadAsync(c => AppStore.FindAsync(c, null, name), cancellationToken);

    public Task<AppRelease?> GetReleaseAsync(string app, string version, CancellationToken cancellationToken = default) =>
        db.ReadAsync(c => AppStore.GetReleaseAsync(c, null, app, version), cancellationToken);

    public async Task<IReadOnlyList<App>> ListAsync(CancellationToken cancellationToken = default) =>
        await db.ReadAsync(c => AppStore.ListAsync(c, null, AppRules.MaxApps), cancellationToken);

    public async Task<IReadOnlyList<AppRelease>> CurrentReleasesAsync(CancellationToken cancellationToken = default) =>
        await db.ReadAsync(AppStore.CurrentReleasesAsync, cancellationToken);

    public async Task<(AppResponse? Value, ApiError? Error)> RegisterAsync(CreateAppRequest body, string actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(actor);
        var errors = new Dictionary<string, string[]>();
        if (AppRules.CheckName(body.Name) is { } nameError)
        {
            errors["name"] = [nameError];
        }

        var (prefix, prefixError) = AppRules.NormalizeRoutePrefix(body.RoutePrefix);
        if (prefixError is not null)
        {
            errors["routePrefix"] = [prefixError];
        }

        var healthPath = body.HealthPath ?? AppRules.DefaultHealthPath;
        if (AppRules.CheckHealthPath(healthPath) is { } healthError)
        {
            errors["healthPath"] = [healthError];
        }

        var instances = body.Shared?.Instances ?? AppRules.MinInstances;
        if (AppRules.CheckInstances(instances) is { } instancesError)
        {
            errors["shared.instances"] = [instancesError];
        }

        if (errors.Count > 0)
        {
            return (null, ApiError.Validation(errors));
        }

        var now = time.GetUtcNow();
        var app = new App { Name = body.Name!, RoutePrefix = prefix!, HealthPath = healthPath, SharedInstances = instances, CreatedAt = now, UpdatedAt = now };
        var error = await db.WriteAsync<ApiError?>(async (c, tx) =>
        {
            if (await AppStore.FindAsync(c, tx, app.Name) is not null)
            {
                return ApiError.Conflict("app-exists", "The app exists.", $"An app named '{app.Name}' is registered already.");
            }

            if (await AppStore.RouteOwnerAsync(c, tx, AppRules.RouteKey(app.RoutePrefix)) is { } owner)
            {
                return ApiError.Validation("routePrefix", $"routePrefix '{app.RoutePrefix}' is claimed by app '{owner}'; each app has its own prefix.");
            }

            if ((await AppStore.ListAsync(c, null, AppRules.MaxApps, tx)).Count >= AppRules.MaxApps)
            {
                return ApiError.Conflict("too-many-apps", "Too many apps.", $"At most {AppRules.MaxApps} apps can be registered; every tenant runs every app.");
            }

            await AppStore.InsertAsync(c, tx, app);
            await AuditLog.AppendAsync(c, tx, AuditLog.By(actor, null, "app.register", "succeeded",
                new JsonObject { ["app"] = app.Name, ["routePrefix"] = app.RoutePrefix, ["sharedInstances"] = app.SharedInstances }, now));
            return null;
        }, cancellationToken);
        if (error is not null)
        {
            return (null, error);
        }

        Log.AppRegistered(logger, app.Name, app.RoutePrefix);
        return (AppResponse.From(app, null), null);
    }

    public async Task<(ReleaseResponse? Value, ApiError? Error)> CreateReleaseAsync(string appName, CreateReleaseRequest body, string actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(actor);
        var errors = new Dictionary<string, string[]>();
        if (AppRules.CheckVersion(body.Version) is { } versionError)
        {
            errors["version"] = [versionError];
        }

        var process = CheckProcess(body.Process, errors);
        if (body.Image is not null && (body.Image.Length is 0 or > 512 || body.Image.Any(c => char.IsWhiteSpace(c) || char.IsControl(c))))
        {
            errors["image"] = ["image is a container image reference (no spaces), at most 512 characters."];
        }
        else if (body.Image is null && configuration?["Tenantry:Compute:Provider"] == "kubernetes")
        {
            errors["image"] = ["Apps run on Kubernetes here (Tenantry:Compute:Provider): a release names the container image its instances run."];
        }

        IReadOnlyList<ReleaseMigration> migrations = [];
        if (body.Migrations is not null && body.MigrationsPath is not null)
        {
            errors["migrationsPath"] = ["Give migrations or migrationsPath, not both."];
        }
        else if (body.Migrations is not null)
        {
            migrations = ReleaseMigrations.FromRequest(body.Migrations, errors);
        }
        else if (body.MigrationsPath is not null && (body.MigrationsPath.Length == 0 || !Path.IsPathFullyQualified(body.MigrationsPath) || AppRules.HasControl(body.MigrationsPath)))
        {
            errors["migrationsPath"] = ["migrationsPath is an absolute folder path on the control plane's machine (the CLI resolves a manifest's relative path)."];
        }

        var seed = ReleaseMigrations.SeedFromRequest(body.Seed, body.SeedPath, errors);

        if (errors.Count > 0)
        {
            return (null, ApiError.Validation(errors));
        }

        if (body.MigrationsPath is not null)
        {
            var (read, readError) = await ReleaseMigrations.ReadFolderAsync(body.MigrationsPath, cancellationToken);
            if (readError is not null)
            {
                return (null, readError);
            }

            migrations = read;
        }

        if (body.SeedPath is not null)
        {
            var (read, readError) = await ReleaseMigrations.ReadSeedFileAsync(body.SeedPath, cancellationToken);
            if (readError is not null)
            {
                return (null, readError);
            }

            seed = read;
        }

        if ((ReleaseMigrations.Check(migrations) ?? ReleaseMigrations.CheckSeed(seed)) is { } migrationsError)
        {
            return (null, migrationsError);
        }

        // An image runs on a cluster, where the command is the image's to resolve.
        if (body.Image is null && ReleaseCommand.Resolve(process!.Command, process.WorkingDirectory) is null)
        {
            return (null, ReleaseMigrations.Unprocessable("command-not-found", "The command does not exist.",
                $"process.command '{process.Command}' is not an executable file: not an absolute path, not on the control plane's PATH, not under the working directory ({process.WorkingDirectory ?? "none"})."));
        }

        var version = body.Version!;

        // The checks the write repeats, first on their own: a release refused by them is not worth trying on a database.
        if (await db.ReadAsync(c => CheckNewReleaseAsync(c, null, appName, version, migrations), cancellationToken) is { } early)
        {
            return (null, early);
        }

        if ((migrations.Count > 0 || seed is not null) && await validator.ValidateAsync(migrations, seed, cancellationToken) is { } sqlError)
        {
            return (null, sqlError);
        }

        var now = time.GetUtcNow();
        var release = new AppRelease
        {
            App = appName,
            Version = version,
            Process = process!,
            Image = body.Image,
            Migrations = migrations,
            Seed = seed,
            CreatedBy = actor,
            CreatedAt = now,
        };
        var (created, error) = await db.WriteAsync<(bool First, ApiError? Error)>(async (c, tx) =>
        {
            if (await CheckNewReleaseAsync(c, tx, appName, version, migrations) is { } checkError)
            {
                return (false, checkError);
            }

            var app = (await AppStore.FindAsync(c, tx, appName))!;
            await AppStore.InsertReleaseAsync(c, tx, release);
            if (app.CurrentRelease is null)
            {
                await AppStore.SetCurrentReleaseAsync(c, tx, appName, release.Version, now);
            }

            await AuditLog.AppendAsync(c, tx, AuditLog.By(actor, null, "release.create", "succeeded",
                new JsonObject { ["app"] = appName, ["version"] = release.Version, ["migrations"] = migrations.Count, ["seed"] = seed?.Checksum, ["current"] = app.CurrentRelease is null }, now));
            return (app.CurrentRelease is null, null);
        }, cancellationToken);
        if (error is not null)
        {
            return (null, error);
        }

        Log.ReleaseCreated(logger, appName, release.Version, migrations.Count, created);
        return (ReleaseResponse.From(release), null);
    }

    /// <summary>Why this version cannot be added: no such app, the version exists, or the migrations do not extend the latest release's.</summary>
    private static async Task<ApiError?> CheckNewReleaseAsync(DbConnection c, DbTransaction? tx, string appName, string version, IReadOnlyList<ReleaseMigration> migrations)
    {
        if (await AppStore.FindAsync(c, tx, appName) is null)
        {
            return ApiError.NotFound($"App '{appName}'");
        }

        if (await AppStore.ReleaseExistsAsync(c, tx, appName, version))
        {
            return ApiError.Conflict("release-exists", "The release exists.", $"App '{appName}' has a release {version} already; releases are immutable, give a new version.");
        }

        var previous = await AppStore.LatestReleaseAsync(c, tx, appName);
        return previous is null ? null : ReleaseMigrations.CheckForwardOnly(previous, migrations);
    }

    private static ReleaseProcess? CheckProcess(ProcessRequest? process, Dictionary<string, string[]> errors)
    {
        if (process is null)
        {
            errors["process"] = ["process is required: {command, args[], workingDirectory?, env{}}."];
            return null;
        }

        var before = errors.Count;
        if (string.IsNullOrWhiteSpace(process.Command))
        {
            errors["process.command"] = ["process.command is required."];
        }
        else if (process.Command.Length > 1024 || AppRules.HasControl(process.Command) || process.Command.Contains('\n', StringComparison.Ordinal))
        {
            errors["process.command"] = ["process.command is one line of at most 1024 characters."];
        }

        var args = process.Args ?? [];
        if (args.Count > AppRules.MaxArgs)
        {
            errors["process.args"] = [$"At most {AppRules.MaxArgs} arguments."];
        }

        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] is not { Length: <= 4096 } arg || arg.Contains('\0', StringComparison.Ordinal))
            {
                errors[$"process.args[{i}]"] = ["An argument is a string of at most 4096 characters without NUL."];
            }
        }

        if (process.WorkingDirectory is { } wd && (!Path.IsPathFullyQualified(wd) || AppRules.HasControl(wd)))
        {
            errors["process.workingDirectory"] = ["process.workingDirectory is an absolute path."];
        }

        var env = process.Env ?? new Dictionary<string, string?>();
        if (env.Count > AppRules.MaxEnv)
        {
            errors["process.env"] = [$"At most {AppRules.MaxEnv} environment variables."];
        }

        foreach (var (name, value) in env)
        {
            if (AppRules.CheckEnvName(name) is { } nameError)
            {
                errors[$"process.env.{name}"] = [nameError];
            }
            else if (value is not { Length: <= 32 * 1024 } || value.Contains('\0', StringComparison.Ordinal))
            {
                errors[$"process.env.{name}"] = ["A value is a string of at most 32768 characters without NUL."];
            }
        }

        return errors.Count > before ? null : new ReleaseProcess(
            process.Command!, [.. args.Select(a => a!)], process.WorkingDirectory,
            env.ToDictionary(e => e.Key, e => e.Value!, StringComparer.Ordinal));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "App {App} registered at route prefix {RoutePrefix}")]
        public static partial void AppRegistered(ILogger logger, string app, string routePrefix);

        [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Release {Version} of app {App} created with {Migrations} migrations (current: {Current})")]
        public static partial void ReleaseCreated(ILogger logger, string app, string version, int migrations, bool current);
    }
}
