using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tenantry.Cli;

/// <summary><c>tenantry apps</c> and <c>tenantry releases</c>: the application registry.</summary>
internal static partial class TenantryCli
{
    private static Command AppsCommand()
    {
        var apps = new Command("apps", "Registered applications: list, show, register from a manifest (tenantry.app.json).");

        var limit = new Option<int>("--limit") { Description = "apps per page (1-200)", DefaultValueFactory = _ => 50 };
        var cursor = new Option<string?>("--cursor") { Description = "continue after a previous page" };
        var all = new Option<bool>("--all") { Description = "follow every page" };
        var list = new Command("list", "Registered applications by name, with their route and current release.") { limit, cursor, all };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var (items, next) = await PagesAsync(api, "/v1/apps", parse.GetValue(limit), parse.GetValue(cursor), parse.GetValue(all), ct);
            if (ctx.IsJson)
            {
                ctx.Json(JsonSerializer.SerializeToElement(new { items, nextCursor = next }, Json.Options));
                return ExitCodes.Ok;
            }

            ctx.Table(["NAME", "ROUTE", "HEALTH", "INSTANCES", "CURRENT", "CREATED"], items.Select(a => (IReadOnlyList<string>)
                [a.Str("name"), a.Str("routePrefix"), a.Str("healthPath"), a.GetProperty("shared").Str("instances"), Current(a), Output.Time(a.Str("createdAt"))]));
            if (next is not null)
            {
                ctx.Err.WriteLine($"More apps: --cursor {next} (or --all).");
            }

            return ExitCodes.Ok;
        }));
        apps.Subcommands.Add(list);

        var name = new Argument<string>("app") { Description = "app name" };
        var get = ShowCommand("get", "One application with its current release.", name, "/v1/apps");
        apps.Subcommands.Add(get);

        var manifest = new Argument<FileInfo>("manifest") { Description = "tenantry.app.json: the app's fields and a release; relative paths are relative to the manifest" };
        var register = new Command("register", "Register an application from its manifest and create the release it names (the first release becomes current).") { manifest };
        register.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var file = parse.GetValue(manifest)!;
            var (app, release) = await ReadManifestAsync(file, ct);
            var created = await api.SendAsync(HttpMethod.Post, "/v1/apps", app, null, ct);
            var appName = created.Str("name");
            JsonElement? releaseCreated = null;
            if (release is not null)
            {
                try
                {
                    releaseCreated = await api.SendAsync(HttpMethod.Post, "/v1/apps/" + Escape(appName) + "/releases", release, null, ct);
                }
                catch (CliException e)
                {
                    throw new CliException(e.ExitCode, $"App {appName} is registered, but its release was refused: {e.Message} Fix the manifest's release and run `tenantry releases create {appName} …`.");
                }
            }

            var result = await api.GetAsync("/v1/apps/" + Escape(appName), ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
            }
            else
            {
                ctx.Out.WriteLine($"Registered {appName} at {result.Str("routePrefix")}" + (releaseCreated is { } r
                    ? $"; release {r.Str("version")} ({r.GetProperty("migrations").GetArrayLength()} migrations) is current."
                    : "; no release yet: tenantry releases create " + appName + " --version … --command …"));
            }

            return ExitCodes.Ok;
        }));
        apps.Subcommands.Add(register);
        return apps;
    }

    private static Command ReleasesCommand()
    {
        var releases = new Command("releases", "An application's immutable releases: create one, list them.");

        var app = new Argument<string>("app") { Description = "app name" };
        var version = new Option<string>("--version") { Description = "semantic version, e.g. 1.2.0", Required = true };
        var command = new Option<string>("--command") { Description = "the executable: an absolute path, a name on PATH, or a path relative to --working-directory", Required = true };
        var args = new Option<string[]>("--arg") { Description = "an argument (repeat for each, in order)", AllowMultipleArgumentsPerToken = false };
        var workingDirectory = new Option<DirectoryInfo?>("--working-directory") { Description = "where the process starts (relative to the current folder)" };
        var env = new Option<string[]>("--env") { Description = "NAME=value (repeat); PORT and TENANTRY_* are set by Tenantry" };
        var image = new Option<string?>("--image") { Description = "container image (the command then runs inside it)" };
        var migrations = new Option<DirectoryInfo?>("--migrations") { Description = "folder of numbered .sql files (001_create_orders.sql, …)" };
        var seed = new Option<FileInfo?>("--seed") { Description = ".sql file run once for each new tenant after its migrations, in the tenant's own scope" };
        var create = new Command("create", "Create a release: its process, and the migrations it adds at the end of the previous release's.") { app, version, command, args, workingDirectory, env, image, migrations, seed };
        create.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var variables = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var pair in parse.GetValue(env) ?? [])
            {
                var eq = pair.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0)
                {
                    throw new CliException(ExitCodes.Usage, $"--env '{pair}' is not NAME=value.");
                }

                variables[pair[..eq]] = pair[(eq + 1)..];
            }

            var body = new
            {
                version = parse.GetValue(version),
                process = new { command = parse.GetValue(command), args = parse.GetValue(args) ?? [], workingDirectory = parse.GetValue(workingDirectory)?.FullName, env = variables },
                image = parse.GetValue(image),
                migrationsPath = parse.GetValue(migrations)?.FullName,
                seedPath = parse.GetValue(seed)?.FullName,
            };
            var release = await api.SendAsync(HttpMethod.Post, "/v1/apps/" + Escape(parse.GetValue(app)!) + "/releases", body, null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(release);
            }
            else
            {
                ctx.Out.WriteLine($"Created release {release.Str("version")} of {release.Str("app")} with {release.GetProperty("migrations").GetArrayLength()} migrations.");
            }

            return ExitCodes.Ok;
        }));
        releases.Subcommands.Add(create);

        var listApp = new Argument<string>("app") { Description = "app name" };
        var limit = new Option<int>("--limit") { Description = "releases per page (1-200)", DefaultValueFactory = _ => 50 };
        var cursor = new Option<string?>("--cursor") { Description = "continue after a previous page" };
        var all = new Option<bool>("--all") { Description = "follow every page" };
        var list = new Command("list", "The app's releases, oldest first.") { listApp, limit, cursor, all };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var (items, next) = await PagesAsync(api, "/v1/apps/" + Escape(parse.GetValue(listApp)!) + "/releases", parse.GetValue(limit), parse.GetValue(cursor), parse.GetValue(all), ct);
            if (ctx.IsJson)
            {
                ctx.Json(JsonSerializer.SerializeToElement(new { items, nextCursor = next }, Json.Options));
                return ExitCodes.Ok;
            }

            ctx.Table(["VERSION", "COMMAND", "IMAGE", "MIGRATIONS", "CREATED"], items.Select(r => (IReadOnlyList<string>)
                [r.Str("version"), r.GetProperty("process").Str("command"), r.Str("image"),
                 r.GetProperty("migrations").GetArrayLength().ToString(CultureInfo.InvariantCulture), Output.Time(r.Str("createdAt"))]));
            if (next is not null)
            {
                ctx.Err.WriteLine($"More releases: --cursor {next} (or --all).");
            }

            return ExitCodes.Ok;
        }));
        releases.Subcommands.Add(list);
        return releases;
    }

    private static string Current(JsonElement app) =>
        app.TryGetProperty("currentRelease", out var r) && r.ValueKind == JsonValueKind.Object ? r.Str("version") : "";

    private static async Task<(List<JsonElement> Items, string? Next)> PagesAsync(ApiClient api, string path, int limit, string? cursor, bool all, CancellationToken ct)
    {
        var items = new List<JsonElement>();
        var next = cursor;
        do
        {
            var page = await api.GetAsync(path + Query(("limit", limit.ToString(CultureInfo.InvariantCulture)), ("cursor", next)), ct);
            items.AddRange(page.GetProperty("items").EnumerateArray());
            next = page.Str("nextCursor") is { Length: > 0 } c ? c : null;
        }
        while (all && next is not null);

        return (items, next);
    }

    /// <summary>
    /// The manifest as the two API bodies: the app's fields, and its <c>release</c> with
    /// <c>migrationsPath</c>, <c>seedPath</c> and <c>process.workingDirectory</c> made absolute from the manifest's folder.
    /// </summary>
    private static async Task<(JsonObject App, JsonObject? Release)> ReadManifestAsync(FileInfo file, CancellationToken ct)
    {
        JsonObject manifest;
        try
        {
            var text = await File.ReadAllTextAsync(file.FullName, ct);
            manifest = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false, CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new CliException(ExitCodes.Usage, $"{file.Name}: the manifest is a JSON object.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new CliException(ExitCodes.Usage, $"Cannot read the manifest {file.Name}: {e.Message}");
        }

        var folder = file.DirectoryName!;
        JsonObject? release = null;
        if (manifest.TryGetPropertyValue("release", out var node))
        {
            manifest.Remove("release");
            release = node as JsonObject ?? throw new CliException(ExitCodes.Usage, $"{file.Name}: release is an object {{version, process, migrationsPath}}.");
            MakeAbsolute(release, "migrationsPath", folder, file.Name);
            MakeAbsolute(release, "seedPath", folder, file.Name);
            if (release["process"] is JsonObject process)
            {
                MakeAbsolute(process, "workingDirectory", folder, file.Name);
            }
        }

        return (manifest, release);
    }

    private static void MakeAbsolute(JsonObject parent, string property, string folder, string manifest)
    {
        if (!parent.TryGetPropertyValue(property, out var value) || value is null)
        {
            return;
        }

        if (value.GetValueKind() != JsonValueKind.String)
        {
            throw new CliException(ExitCodes.Usage, $"{manifest}: {property} is a path.");
        }

        parent[property] = Path.GetFullPath(Path.Combine(folder, value.GetValue<string>()));
    }
}
