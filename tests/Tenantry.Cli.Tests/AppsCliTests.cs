using System.Text.Json;
using System.Text.Json.Nodes;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

public sealed class AppsCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly string _project = Directory.CreateTempSubdirectory("tenantry-cli-app-").FullName;
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public AppsCliTests() => _cli = new Cli(_config);

    /// <summary>The host's address as a user types it (no trailing slash).</summary>
    private string Url => _host.ControlPlane.GetLeftPart(UriPartial.Authority);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane());

    public Task DisposeAsync()
    {
        _host?.Dispose();
        File.Delete(_config);
        Directory.Delete(_project, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task An_app_is_registered_from_a_manifest_with_a_migrations_folder_and_gets_releases_from_the_cli()
    {
        // A manifest with a relative migrations folder and working directory, run from another folder.
        var migrations = Directory.CreateDirectory(Path.Combine(_project, "db", "migrations")).FullName;
        await File.WriteAllTextAsync(Path.Combine(migrations, "001_orders.sql"), "CREATE TABLE orders (tenant_id TEXT NOT NULL, id TEXT NOT NULL);");
        await File.WriteAllTextAsync(Path.Combine(migrations, "002_lines.sql"), "CREATE TABLE order_lines (tenant_id TEXT NOT NULL, order_id TEXT);");
        var bin = Directory.CreateDirectory(Path.Combine(_project, "bin")).FullName;
        var server = Path.Combine(bin, "shop-server");
        await File.WriteAllTextAsync(server, "#!/bin/sh\nexit 0\n");
        File.SetUnixFileMode(server, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var manifest = Path.Combine(_project, "tenantry.app.json");
        await File.WriteAllTextAsync(manifest, """
            {
              // The shop, served under /shop.
              "name": "shop",
              "routePrefix": "/shop",
              "healthPath": "/healthz",
              "shared": { "instances": 2 },
              "release": {
                "version": "1.0.0",
                "process": { "command": "./shop-server", "args": ["--urls", "http://127.0.0.1:0"], "workingDirectory": "bin", "env": { "LOG_LEVEL": "info" } },
                "migrationsPath": "db/migrations"
              }
            }
            """);

        var login = await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());

        var register = await _cli.RunAsync("apps", "register", manifest);
        Assert.True(register.ExitCode == 0, register.ToString());
        Assert.Contains("Registered shop at /shop; release 1.0.0 (2 migrations) is current.", register.Out, StringComparison.Ordinal);

        var list = await _cli.RunAsync("apps", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        var lines = list.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("NAME", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("shop ", StringComparison.Ordinal) && l.Contains("/shop", StringComparison.Ordinal) && l.Contains("1.0.0", StringComparison.Ordinal));

        var get = await _cli.RunAsync("apps", "get", "shop", "-o", "json");
        Assert.True(get.ExitCode == 0, get.ToString());
        var app = JsonDocument.Parse(get.Out).RootElement;
        var process = app.GetProperty("currentRelease").GetProperty("process");
        Assert.Equal(bin, process.GetProperty("workingDirectory").GetString());
        Assert.Equal(["--urls", "http://127.0.0.1:0"], process.GetProperty("args").EnumerateArray().Select(a => a.GetString()));

        // A next release adds a migration at the end; its folder is relative to the current folder.
        await File.WriteAllTextAsync(Path.Combine(migrations, "003_notes.sql"), "CREATE TABLE notes (tenant_id TEXT NOT NULL, body TEXT);");
        var create = await _cli.RunAsync("releases", "create", "shop", "--version", "1.1.0", "--command", "/bin/sh", "--arg", "-c", "--arg", "exec sleep 60",
            "--env", "LOG_LEVEL=debug", "--migrations", migrations);
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("Created release 1.1.0 of shop with 3 migrations.", create.Out, StringComparison.Ordinal);

        var duplicate = await _cli.RunAsync("releases", "create", "shop", "--version", "1.1.0", "--command", "/bin/sh");
        Assert.Equal(5, duplicate.ExitCode);
        Assert.Contains("release", duplicate.Err, StringComparison.Ordinal);

        var missing = await _cli.RunAsync("releases", "create", "shop", "--version", "1.2.0", "--command", "no-such-server-4711", "--migrations", migrations);
        Assert.Equal(5, missing.ExitCode);
        Assert.Contains("no-such-server-4711", missing.Err, StringComparison.Ordinal);

        var reserved = await _cli.RunAsync("releases", "create", "shop", "--version", "1.2.0", "--command", "/bin/sh", "--env", "PORT=80");
        Assert.Equal(5, reserved.ExitCode);
        Assert.Contains("process.env.PORT", reserved.Err, StringComparison.Ordinal);

        var releases = await _cli.RunAsync("releases", "list", "shop", "-o", "json");
        Assert.True(releases.ExitCode == 0, releases.ToString());
        Assert.Equal(["1.0.0", "1.1.0"], JsonDocument.Parse(releases.Out).RootElement.GetProperty("items").EnumerateArray().Select(r => r.GetProperty("version").GetString()));
        var table = await _cli.RunAsync("releases", "list", "shop");
        Assert.Contains(table.Out.Split('\n'), l => l.StartsWith("1.1.0", StringComparison.Ordinal) && l.Contains("/bin/sh", StringComparison.Ordinal) && l.Contains(" 3 ", StringComparison.Ordinal));

        var unknown = await _cli.RunAsync("apps", "get", "no-such-app");
        Assert.Equal(3, unknown.ExitCode);
        var again = await _cli.RunAsync("apps", "register", manifest);
        Assert.Equal(5, again.ExitCode);
        Assert.Contains("exists", again.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_python_sample_registers_from_its_manifest_and_its_release_2_0_0_extends_1_0_0()
    {
        var sample = Path.Combine(RepositoryRoot(), "samples", "notes-py");
        var login = await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());

        var register = await _cli.RunAsync("apps", "register", Path.Combine(sample, "tenantry.app.json"));
        Assert.True(register.ExitCode == 0, register.ToString());
        Assert.Contains("Registered notes at /notes; release 1.0.0 (1 migrations) is current.", register.Out, StringComparison.Ordinal);

        var get = await _cli.RunAsync("apps", "get", "notes", "-o", "json");
        Assert.True(get.ExitCode == 0, get.ToString());
        var app = JsonDocument.Parse(get.Out).RootElement;
        Assert.Equal("/healthz", app.GetProperty("healthPath").GetString());
        Assert.Equal(2, app.GetProperty("shared").GetProperty("instances").GetInt32());
        var process = app.GetProperty("currentRelease").GetProperty("process");
        Assert.Equal("python3", process.GetProperty("command").GetString());
        Assert.Equal(["app.py"], process.GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(sample, process.GetProperty("workingDirectory").GetString());

        // Release 2.0.0 as its file describes it, paths relative to the file: the control plane takes it as forward only.
        var release = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(sample, "release-2.0.0.json")))!;
        var args = new List<string> { "releases", "create", "notes", "--version", release["version"]!.GetValue<string>(), "--command", release["process"]!["command"]!.GetValue<string>() };
        foreach (var arg in release["process"]!["args"]!.AsArray())
        {
            args.AddRange(["--arg", arg!.GetValue<string>()]);
        }

        foreach (var (name, value) in release["process"]!["env"]!.AsObject())
        {
            args.AddRange(["--env", $"{name}={value!.GetValue<string>()}"]);
        }

        args.AddRange(["--working-directory", Path.Combine(sample, release["process"]!["workingDirectory"]!.GetValue<string>())]);
        args.AddRange(["--migrations", Path.Combine(sample, release["migrationsPath"]!.GetValue<string>())]);
        var create = await _cli.RunAsync([.. args]);
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("Created release 2.0.0 of notes with 2 migrations.", create.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_manifest_whose_release_is_refused_says_the_app_is_registered_and_what_was_wrong()
    {
        var manifest = Path.Combine(_project, "tenantry.app.json");
        await File.WriteAllTextAsync(manifest, """
            { "name": "broken", "routePrefix": "/broken",
              "release": { "version": "1.0.0", "process": { "command": "/bin/sh" },
                           "migrations": [ { "id": "001_init", "sql": "CREATE TABLE things (id TEXT PRIMARY KEY);" } ] } }
            """);
        var login = await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());

        var register = await _cli.RunAsync("apps", "register", manifest);
        Assert.Equal(5, register.ExitCode);
        Assert.Contains("App broken is registered, but its release was refused", register.Err, StringComparison.Ordinal);
        Assert.Contains("'things'", register.Err, StringComparison.Ordinal);

        var notJson = Path.Combine(_project, "bad.json");
        await File.WriteAllTextAsync(notJson, "{ \"name\": ");
        var bad = await _cli.RunAsync("apps", "register", notJson);
        Assert.Equal(2, bad.ExitCode);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Tenantry.slnx) is not above " + AppContext.BaseDirectory);
    }
}
