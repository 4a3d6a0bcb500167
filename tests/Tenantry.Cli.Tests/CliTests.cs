using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

public sealed record CliResult(int ExitCode, string Out, string Err)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Err}";
}

/// <summary>Runs the built <c>tenantry</c> CLI as a separate process with its own config file.</summary>
public sealed class Cli(string configPath)
{
    private static readonly string Dll = Path.GetFullPath(Path.Combine(
        AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src", "Tenantry.Cli", "bin",
        new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name, "net10.0", "tenantry.dll"));

    public async Task<CliResult> RunAsync(params string[] args)
    {
        Assert.True(File.Exists(Dll), $"{Dll} is missing: build the solution first.");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        info.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("TENANTRY_", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        info.Environment["TENANTRY_CONFIG"] = configPath;
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }
}

public sealed class CliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public CliTests() => _cli = new Cli(_config);

    /// <summary>The host's address as a user types it (no trailing slash).</summary>
    private string Url => _host.ControlPlane.GetLeftPart(UriPartial.Authority);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane());

    [Fact]
    public async Task Help_lists_the_commands_and_exit_codes_and_bad_command_lines_exit_2()
    {
        var help = await _cli.RunAsync("--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var word in new[] { "login", "tenants", "operations", "audit", "usage", "costs", "Exit codes" })
        {
            Assert.Contains(word, help.Out, StringComparison.Ordinal);
        }

        var unknown = await _cli.RunAsync("tenants", "lst");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("lst", unknown.Err, StringComparison.Ordinal);

        var badOutput = await _cli.RunAsync("tenants", "list", "-o", "xml");
        Assert.Equal(2, badOutput.ExitCode);

        var badUrl = await _cli.RunAsync("tenants", "list", "--url", "not a url");
        Assert.Equal(2, badUrl.ExitCode);
    }

    [Fact]
    public async Task Wrong_url_missing_login_bad_secret_and_forged_token_get_clear_errors_and_their_exit_codes()
    {
        var closed = await _cli.RunAsync("tenants", "list", "--url", "http://127.0.0.1:9");
        Assert.Equal(6, closed.ExitCode);
        Assert.Contains("Cannot reach Tenantry at http://127.0.0.1:9", closed.Err, StringComparison.Ordinal);

        var notLoggedIn = await _cli.RunAsync("tenants", "list", "--url", Url);
        Assert.Equal(4, notLoggedIn.ExitCode);
        Assert.Contains("Not logged in", notLoggedIn.Err, StringComparison.Ordinal);

        var badSecret = await _cli.RunAsync("login", "--url", Url, "--client-secret", "wrong-secret-0123456789");
        Assert.Equal(4, badSecret.ExitCode);
        Assert.Contains("Login refused", badSecret.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(_config));

        // A token the server did not sign, saved as if it had come from a login.
        var header = Base64Url("""{"alg":"none","typ":"JWT"}""");
        var payload = Base64Url("""{"sub":"operator","scope":"tenantry:admin","exp":4102444800}""");
        await File.WriteAllTextAsync(_config, JsonSerializer.Serialize(new { url = Url, token = $"{header}.{payload}.", expiresAt = DateTimeOffset.UtcNow.AddHours(1) }));
        var forged = await _cli.RunAsync("tenants", "list");
        Assert.Equal(4, forged.ExitCode);
        Assert.Contains("token was refused", forged.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tenant_goes_through_its_life_from_the_cli_with_tables_json_and_progress()
    {
        var login = await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());
        Assert.Contains("Logged in", login.Out, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_config));
        }

        var create = await _cli.RunAsync("tenants", "create", "--name", "Globex Corp", "--tier", "standard", "--admin-email", "admin@globex.test", "--wait");
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("7/7", create.Out, StringComparison.Ordinal);
        Assert.Contains("[succeeded]", create.Out, StringComparison.Ordinal);

        var list = await _cli.RunAsync("tenants", "list", "--status", "active");
        Assert.Equal(0, list.ExitCode);
        var lines = list.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("ID", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.Contains("globex-corp", StringComparison.Ordinal) && l.Contains("standard", StringComparison.Ordinal) && l.Contains("active", StringComparison.Ordinal));

        var json = await _cli.RunAsync("tenants", "list", "-o", "json");
        var items = JsonDocument.Parse(json.Out).RootElement.GetProperty("items");
        var id = Assert.Single(items.EnumerateArray()).GetProperty("id").GetString()!;

        var show = await _cli.RunAsync("tenants", "show", "globex-corp");
        Assert.Equal(0, show.ExitCode);
        Assert.Contains(id, show.Out, StringComparison.Ordinal);
        Assert.Contains("resources:", show.Out, StringComparison.Ordinal);
        Assert.Contains("database:", show.Out, StringComparison.Ordinal);

        Assert.Equal(0, (await _cli.RunAsync("tenants", "suspend", "globex-corp", "--wait")).ExitCode);
        var again = await _cli.RunAsync("tenants", "suspend", "globex-corp");
        Assert.Equal(5, again.ExitCode);
        Assert.Contains("suspended", again.Err, StringComparison.Ordinal);
        Assert.Equal(0, (await _cli.RunAsync("tenants", "reactivate", id, "--wait")).ExitCode);

        // A tier change of another isolation model moves the data, with progress; an unknown tier names the field.
        var moved = await _cli.RunAsync("tenants", "change-tier", "globex-corp", "premium", "--wait");
        Assert.True(moved.ExitCode == 0, moved.ToString());
        Assert.Contains("change-tier", moved.Out, StringComparison.Ordinal);
        Assert.Contains("\"premium\"", (await _cli.RunAsync("tenants", "show", "globex-corp", "-o", "json")).Out, StringComparison.Ordinal);
        var unknownTier = await _cli.RunAsync("tenants", "change-tier", "globex-corp", "platinum");
        Assert.NotEqual(0, unknownTier.ExitCode);
        Assert.Contains("tier", unknownTier.Err, StringComparison.Ordinal);
        Assert.Contains("change-tier", (await _cli.RunAsync("tenants", "--help")).Out, StringComparison.Ordinal);

        var unconfirmed = await _cli.RunAsync("tenants", "offboard", "globex-corp");
        Assert.Equal(2, unconfirmed.ExitCode);
        Assert.Contains("--yes", unconfirmed.Err, StringComparison.Ordinal);
        var offboard = await _cli.RunAsync("tenants", "offboard", "globex-corp", "--yes", "--wait", "-o", "json");
        Assert.True(offboard.ExitCode == 0, offboard.ToString());
        Assert.Equal("succeeded", JsonDocument.Parse(offboard.Out).RootElement.GetProperty("status").GetString());

        var audit = await _cli.RunAsync("audit", "--tenant", id, "--limit", "100");
        Assert.Equal(0, audit.ExitCode);
        foreach (var action in new[] { "tenant.create", "tenant.suspension", "tenant.reactivation", "tenant.offboarding" })
        {
            Assert.Contains(action, audit.Out, StringComparison.Ordinal);
        }

        var missing = await _cli.RunAsync("tenants", "show", "no-such-tenant");
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("no-such-tenant", missing.Err, StringComparison.Ordinal);

        var invalid = await _cli.RunAsync("tenants", "create", "--name", "Bad", "--slug", "Bad Slug!", "--admin-email", "nope");
        Assert.Equal(5, invalid.ExitCode);
        Assert.Contains("slug", invalid.Err, StringComparison.Ordinal);
        Assert.Contains("adminEmail", invalid.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_onboarding_exits_7_with_the_step_and_retry_finishes_it()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret)).ExitCode);
        var blocker = Path.Combine(_host.DataDir, "tenants", "stuck-co");
        Directory.CreateDirectory(Path.GetDirectoryName(blocker)!);
        await File.WriteAllTextAsync(blocker, "in the way");

        var create = await _cli.RunAsync("tenants", "create", "--name", "Stuck Co", "--admin-email", "a@stuck.test", "--wait");
        Assert.Equal(7, create.ExitCode);
        Assert.Contains("failed at step provision-storage", create.Err, StringComparison.Ordinal);
        var retryHint = create.Err[(create.Err.IndexOf("operations retry ", StringComparison.Ordinal) + "operations retry ".Length)..].Trim();

        File.Delete(blocker);
        var retry = await _cli.RunAsync("operations", "retry", retryHint, "--wait");
        Assert.True(retry.ExitCode == 0, retry.ToString());
        var show = await _cli.RunAsync("operations", "show", retryHint);
        Assert.Contains("succeeded", show.Out, StringComparison.Ordinal);
        Assert.Contains("provision-storage", show.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Policy_simulate_exits_0_on_allow_and_8_on_deny_and_validate_warns_of_traps()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret)).ExitCode);
        var folder = Path.GetDirectoryName(_config)!;
        Directory.CreateDirectory(folder);
        var allow = Path.Combine(folder, Guid.NewGuid().ToString("N") + "-allow.json");
        await File.WriteAllTextAsync(allow, """
            {"policies":{"identity":[{"Version":"2012-10-17","Statement":[{"Sid":"Read","Effect":"Allow","Action":"storage:GetObject","Resource":"trn:tenantry:storage::acme:tenants/acme/*"}]}]},
             "request":{"action":"storage:GetObject","resource":"trn:tenantry:storage::acme:tenants/acme/a.txt","context":{}}}
            """);
        var deny = Path.Combine(folder, Guid.NewGuid().ToString("N") + "-deny.json");
        await File.WriteAllTextAsync(deny, (await File.ReadAllTextAsync(allow)).Replace("tenants/acme/a.txt", "tenants/beta/a.txt", StringComparison.Ordinal));
        var trap = Path.Combine(folder, Guid.NewGuid().ToString("N") + "-trap.json");
        await File.WriteAllTextAsync(trap, """
            {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:Query","Resource":"*","Condition":{"ForAllValues:StringEquals":{"dynamodb: LeadingKeys":["x"]}}}]}
            """);
        try
        {
            var allowed = await _cli.RunAsync("policy", "simulate", allow);
            Assert.True(allowed.ExitCode == 0, allowed.ToString());
            Assert.Contains("Allow", allowed.Out, StringComparison.Ordinal);
            Assert.Contains("Read", allowed.Out, StringComparison.Ordinal);

            var denied = await _cli.RunAsync("policy", "simulate", deny);
            Assert.Equal(8, denied.ExitCode);
            Assert.Contains("ImplicitDeny", denied.Out, StringComparison.Ordinal);

            var warned = await _cli.RunAsync("policy", "validate", trap, "-o", "json");
            Assert.True(warned.ExitCode == 0, warned.ToString());
            Assert.Contains("LeadingKeys", warned.Out, StringComparison.Ordinal);

            var missing = await _cli.RunAsync("policy", "simulate", Path.Combine(folder, "no-such-file.json"));
            Assert.Equal(2, missing.ExitCode);

            // A property given twice is refused before anything is sent.
            await File.WriteAllTextAsync(trap, """{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Effect":"Allow","Action":"*","Resource":"*"}]}""");
            var repeated = await _cli.RunAsync("policy", "validate", trap);
            Assert.True(repeated.ExitCode == 2, repeated.ToString());
            Assert.Contains("Effect", repeated.Err, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(allow);
            File.Delete(deny);
            File.Delete(trap);
        }
    }

    [Fact]
    public async Task A_locked_out_user_is_listed_with_its_lockout_and_unlocked_from_the_cli()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret)).ExitCode);
        using var op = await _host.OperatorClientAsync();
        using (var created = await op.PostAsJsonAsync("/v1/tenants", new { name = "Locks", slug = "cli-locks", tier = "basic", adminEmail = "admin@cli-locks.test" }))
        {
            Assert.Equal(System.Net.HttpStatusCode.Accepted, created.StatusCode);
        }

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await op.GetFromJsonAsync<JsonElement>("/v1/tenants/cli-locks")).GetProperty("status").GetString() != "active" && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        using var invite = await op.PostAsJsonAsync("/v1/tenants/cli-locks/users", new { email = "user@cli-locks.test", role = "member" });
        var password = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("initialPassword").GetString()!;
        for (var i = 0; i <= 5; i++)
        {
            using var grant = await GrantAsync(op, "user@cli-locks.test", i < 5 ? "guess-" + i : password);
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, grant.StatusCode);
        }

        var list = await _cli.RunAsync("users", "list", "cli-locks");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains("LOCKED UNTIL", list.Out, StringComparison.Ordinal);
        var row = list.Out.Split('\n').Single(l => l.Contains("user@cli-locks.test", StringComparison.Ordinal));
        Assert.Matches(@"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row);

        var unlocked = await _cli.RunAsync("users", "unlock", "cli-locks", "user@cli-locks.test");
        Assert.True(unlocked.ExitCode == 0, unlocked.ToString());
        using (var grant = await GrantAsync(op, "user@cli-locks.test", password))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, grant.StatusCode);
        }

        var unknown = await _cli.RunAsync("users", "unlock", "cli-locks", "nobody@cli-locks.test");
        Assert.NotEqual(0, unknown.ExitCode);
    }

    [Fact]
    public async Task A_tenants_jobs_are_listed_and_one_is_shown_from_the_cli()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret)).ExitCode);
        using var op = await _host.OperatorClientAsync();
        await op.CreateActiveTenantAsync("cli-jobs");
        using var invite = await op.PostAsJsonAsync("/v1/tenants/cli-jobs/users", new { email = "admin@cli-jobs.test", role = "admin" });
        var password = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("initialPassword").GetString()!;
        using var grant = await op.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = "admin@cli-jobs.test", ["password"] = password, ["tenant"] = "cli-jobs",
        }));
        var token = (await grant.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
        using var tenant = new HttpClient { BaseAddress = _host.ControlPlane };
        tenant.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var enqueued = await tenant.PostAsJsonAsync("/v1/jobs", new { type = "report.build", payload = new { month = "2026-11" } });
        Assert.Equal(System.Net.HttpStatusCode.Accepted, enqueued.StatusCode);
        var id = (await enqueued.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        var list = await _cli.RunAsync("jobs", "list", "cli-jobs");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains(id, list.Out, StringComparison.Ordinal);
        Assert.Contains("report.build", list.Out, StringComparison.Ordinal);
        Assert.Contains("queued", list.Out, StringComparison.Ordinal);

        var dead = await _cli.RunAsync("jobs", "list", "cli-jobs", "--status", "dead", "-o", "json");
        Assert.True(dead.ExitCode == 0, dead.ToString());
        Assert.Empty(JsonDocument.Parse(dead.Out).RootElement.GetProperty("items").EnumerateArray());

        var shown = await _cli.RunAsync("jobs", "get", id, "-o", "json");
        Assert.True(shown.ExitCode == 0, shown.ToString());
        Assert.Equal("2026-11", JsonDocument.Parse(shown.Out).RootElement.GetProperty("payload").GetProperty("month").GetString());

        Assert.Equal(3, (await _cli.RunAsync("jobs", "get", Guid.NewGuid().ToString())).ExitCode);
    }

    private static Task<HttpResponseMessage> GrantAsync(HttpClient client, string email, string password) =>
        client.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = email, ["password"] = password, ["tenant"] = "cli-locks",
        }));

    public Task DisposeAsync()
    {
        _host?.Dispose();
        File.Delete(_config);
        return Task.CompletedTask;
    }

    private static string Base64Url(string json) =>
        Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
