using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Apps;

public sealed class AppRegistryTests(TenantryFactory factory) : IClassFixture<TenantryFactory>, IDisposable
{
    private const string Orders = "CREATE TABLE orders (tenant_id TEXT NOT NULL, id TEXT NOT NULL, total INTEGER, PRIMARY KEY (tenant_id, id));";
    private const string Lines = "CREATE TABLE IF NOT EXISTS order_lines (\n  \"tenant_id\" TEXT NOT NULL,\n  order_id TEXT NOT NULL\n);";

    private readonly string _folder = Directory.CreateTempSubdirectory("tenantry-app-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static object Release(string version, object[]? migrations = null, string command = "/bin/sh", string? workingDirectory = null, object? env = null) => new
    {
        version,
        process = new { command, args = new[] { "-c", "exec sleep 1" }, workingDirectory, env = env ?? new Dictionary<string, string>() },
        migrations = migrations ?? [],
    };

    private static object Migration(string id, string sql) => new { id, sql };

    private static async Task CreatedAsync(HttpClient client, string path, object body)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"POST {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task<JsonElement> ProblemAsync(HttpClient client, string path, object body, HttpStatusCode status, string type)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"POST {path}: expected {(int)status}, got {(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonDocument.Parse(text).RootElement;
        Assert.Equal("https://tenantry.dev/problems/" + type, problem.GetProperty("type").GetString());
        return problem;
    }

    [Fact]
    public async Task An_app_with_a_migrations_folder_is_registered_and_its_first_release_becomes_current()
    {
        using var client = await factory.OperatorAsync();
        await File.WriteAllTextAsync(Path.Combine(_folder, "002_order_lines.sql"), Lines);
        await File.WriteAllTextAsync(Path.Combine(_folder, "001_orders.sql"), Orders);
        await File.WriteAllTextAsync(Path.Combine(_folder, "README.md"), "not a migration");

        using (var created = await client.PostAsJsonAsync("/v1/apps", new { name = "shop", routePrefix = "/shop/", healthPath = "/health", shared = new { instances = 2 } }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.Equal("/v1/apps/shop", created.Headers.Location?.ToString());
            var app = await created.JsonAsync();
            Assert.Equal("/shop", app.GetProperty("routePrefix").GetString());
            Assert.Equal(2, app.GetProperty("shared").GetProperty("instances").GetInt32());
            Assert.Equal(JsonValueKind.Null, app.GetProperty("currentRelease").ValueKind);
        }

        using (var release = await client.PostAsJsonAsync("/v1/apps/shop/releases", new
        {
            version = "1.0.0",
            process = new { command = "sh", args = new[] { "-c", "exit 0" }, env = new Dictionary<string, string> { ["LOG_LEVEL"] = "debug" } },
            migrationsPath = _folder,
        }))
        {
            Assert.True(release.StatusCode == HttpStatusCode.Created, await release.Content.ReadAsStringAsync());
            var body = await release.JsonAsync();
            Assert.Equal(["001_orders", "002_order_lines"], body.GetProperty("migrations").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
            Assert.Equal(64, body.GetProperty("migrations")[0].GetProperty("checksum").GetString()!.Length);
            Assert.Equal("operator", body.GetProperty("createdBy").GetString());
        }

        await CreatedAsync(client, "/v1/apps/shop/releases", Release("1.1.0", [Migration("001_orders", Orders), Migration("002_order_lines", Lines.ReplaceLineEndings("\r\n")), Migration("003_notes", "CREATE TABLE notes (tenant_id TEXT, body TEXT);")]));

        // The first release stays current: a later one becomes current by a rollout.
        var shop = await client.GetJsonAsync("/v1/apps/shop");
        Assert.Equal("1.0.0", shop.GetProperty("currentRelease").GetProperty("version").GetString());
        Assert.Equal("sh", shop.GetProperty("currentRelease").GetProperty("process").GetProperty("command").GetString());
        var list = await client.GetJsonAsync("/v1/apps");
        Assert.Contains(list.GetProperty("items").EnumerateArray(), a => a.GetProperty("name").GetString() == "shop"
            && a.GetProperty("currentRelease").GetProperty("version").GetString() == "1.0.0");

        var releases = await client.GetJsonAsync("/v1/apps/shop/releases?limit=1");
        Assert.Equal("1.0.0", Assert.Single(releases.GetProperty("items").EnumerateArray()).GetProperty("version").GetString());
        var next = await client.GetJsonAsync("/v1/apps/shop/releases?limit=1&cursor=" + releases.GetProperty("nextCursor").GetString());
        var second = Assert.Single(next.GetProperty("items").EnumerateArray());
        Assert.Equal("1.1.0", second.GetProperty("version").GetString());
        Assert.Equal(3, second.GetProperty("migrations").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, next.GetProperty("nextCursor").ValueKind);

        var audit = (await client.GetJsonAsync("/v1/audit?limit=200")).GetProperty("items").EnumerateArray()
            .Where(e => e.GetProperty("detail").ValueKind == JsonValueKind.Object && e.GetProperty("detail").TryGetProperty("app", out var a) && a.GetString() == "shop")
            .Select(e => $"{e.GetProperty("action").GetString()} {e.GetProperty("actor").GetString()}").ToList();
        Assert.Equal(["app.register operator", "release.create operator", "release.create operator"], audit);
    }

    [Fact]
    public async Task A_repeated_name_or_version_is_409_and_an_unknown_app_is_404()
    {
        using var client = await factory.OperatorAsync();
        await CreatedAsync(client, "/v1/apps", new { name = "billing-ui", routePrefix = "/billing-ui" });
        await ProblemAsync(client, "/v1/apps", new { name = "billing-ui", routePrefix = "/other" }, HttpStatusCode.Conflict, "app-exists");
        await CreatedAsync(client, "/v1/apps/billing-ui/releases", Release("2.0.0-rc.1+build.7"));
        await ProblemAsync(client, "/v1/apps/billing-ui/releases", Release("2.0.0-rc.1+build.7", command: "/bin/true"), HttpStatusCode.Conflict, "release-exists");

        await ProblemAsync(client, "/v1/apps/no-such-app/releases", Release("1.0.0"), HttpStatusCode.NotFound, "not-found");
        foreach (var path in new[] { "/v1/apps/no-such-app", "/v1/apps/no-such-app/releases" })
        {
            using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
    }

    [Fact]
    public async Task A_release_whose_command_does_not_exist_is_422_naming_it()
    {
        using var client = await factory.OperatorAsync();
        await CreatedAsync(client, "/v1/apps", new { name = "cmd-app", routePrefix = "/cmd" });
        foreach (var (command, wd) in new (string, string?)[] { ("no-such-command-4711", null), ("/opt/nowhere/server", null), ("./server", _folder), ("./server", null) })
        {
            var problem = await ProblemAsync(client, "/v1/apps/cmd-app/releases", Release("1.0.0", command: command, workingDirectory: wd), HttpStatusCode.UnprocessableEntity, "command-not-found");
            Assert.Contains($"'{command}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // A file that is there but not executable is no command either.
        var server = Path.Combine(_folder, "server");
        await File.WriteAllTextAsync(server, "#!/bin/sh\nexit 0\n");
        await ProblemAsync(client, "/v1/apps/cmd-app/releases", Release("1.0.0", command: "./server", workingDirectory: _folder), HttpStatusCode.UnprocessableEntity, "command-not-found");
        File.SetUnixFileMode(server, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await CreatedAsync(client, "/v1/apps/cmd-app/releases", Release("1.0.0", command: "./server", workingDirectory: _folder));

        // With an image the command runs inside it, so it is not looked up here.
        await CreatedAsync(client, "/v1/apps/cmd-app/releases", new { version = "1.0.1", process = new { command = "/app/server" }, image = "registry.example/cmd-app:1.0.1" });
    }

    [Fact]
    public async Task Migrations_changed_reordered_or_dropped_since_the_previous_release_are_422()
    {
        using var client = await factory.OperatorAsync();
        await CreatedAsync(client, "/v1/apps", new { name = "fwd", routePrefix = "/fwd" });
        await CreatedAsync(client, "/v1/apps/fwd/releases", Release("1.0.0", [Migration("001_orders", Orders), Migration("002_order_lines", Lines)]));

        var changed = await ProblemAsync(client, "/v1/apps/fwd/releases",
            Release("1.1.0", [Migration("001_orders", Orders.Replace("total INTEGER", "total BIGINT", StringComparison.Ordinal)), Migration("002_order_lines", Lines)]),
            HttpStatusCode.UnprocessableEntity, "migrations-changed");
        Assert.Contains("001_orders", changed.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await ProblemAsync(client, "/v1/apps/fwd/releases", Release("1.1.0", [Migration("001_orders", Orders)]), HttpStatusCode.UnprocessableEntity, "migrations-changed");
        await ProblemAsync(client, "/v1/apps/fwd/releases",
            Release("1.1.0", [Migration("001_orders", Orders), Migration("002_notes", "CREATE TABLE notes (tenant_id TEXT);"), Migration("003_order_lines", Lines)]),
            HttpStatusCode.UnprocessableEntity, "migrations-changed");
        await ProblemAsync(client, "/v1/apps/fwd/releases",
            Release("1.1.0", [Migration("002_order_lines", Lines), Migration("001_orders", Orders)]), HttpStatusCode.UnprocessableEntity, "migrations-out-of-order");
        await ProblemAsync(client, "/v1/apps/fwd/releases",
            Release("1.1.0", [Migration("001_orders", Orders), Migration("001_again", "CREATE TABLE again (tenant_id TEXT);")]), HttpStatusCode.UnprocessableEntity, "migrations-out-of-order");

        // Nothing of the refused releases was kept; a release that only adds at the end is accepted.
        await CreatedAsync(client, "/v1/apps/fwd/releases",
            Release("1.1.0", [Migration("001_orders", Orders), Migration("002_order_lines", Lines), Migration("003_notes", "CREATE TABLE notes (tenant_id TEXT);")]));
        Assert.Equal(2, (await client.GetJsonAsync("/v1/apps/fwd/releases")).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task A_pooled_table_without_tenant_id_is_422_naming_the_table()
    {
        using var client = await factory.OperatorAsync();
        await CreatedAsync(client, "/v1/apps", new { name = "pool-app", routePrefix = "/pool" });
        var sneaky = new Dictionary<string, string>
        {
            ["invoices"] = "CREATE TABLE invoices (id TEXT PRIMARY KEY, total INTEGER);",
            ["audit_trail"] = "-- tenant_id is added later\nCREATE TABLE IF NOT EXISTS public.\"audit_trail\" (id TEXT, note TEXT DEFAULT 'tenant_id');",
            ["payments"] = "CREATE TABLE payments (id TEXT, amount INTEGER, UNIQUE (tenant_id, id));",
            ["quoted"] = "CREATE TABLE quoted (id TEXT, \"Tenant_Id\" TEXT NOT NULL);",
            ["archive"] = "CREATE TABLE orders_ok (tenant_id TEXT);\nCREATE UNLOGGED TABLE archive AS SELECT id FROM orders_ok;",
        };
        foreach (var (table, sql) in sneaky)
        {
            var problem = await ProblemAsync(client, "/v1/apps/pool-app/releases", Release("1.0.0", [Migration("001_init", sql)]),
                HttpStatusCode.UnprocessableEntity, "pool-table-without-tenant-id");
            Assert.Contains($"'{(table == "audit_trail" ? "public.audit_trail" : table)}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // A CREATE TABLE inside a comment or a string is no table; tenant_id need not be the first column.
        await CreatedAsync(client, "/v1/apps/pool-app/releases", Release("1.0.0", [Migration("001_init",
            "/* CREATE TABLE scratch (id TEXT); */\nCREATE TABLE orders (id TEXT, \"tenant_id\" TEXT NOT NULL, Note TEXT);\nCREATE TABLE Lines (TENANT_ID TEXT);\nINSERT INTO Lines VALUES ('CREATE TABLE x (y)');")]));
    }

    [Fact]
    public async Task Bad_fields_are_400_with_an_error_per_field()
    {
        using var client = await factory.OperatorAsync();
        var app = await ProblemAsync(client, "/v1/apps", new { name = "Bad Name", routePrefix = "orders", healthPath = "health", shared = new { instances = 17 } },
            HttpStatusCode.BadRequest, "validation");
        var fields = app.GetProperty("errors").EnumerateObject().Select(e => e.Name).ToHashSet();
        Assert.Equal(["healthPath", "name", "routePrefix", "shared.instances"], fields.Order(StringComparer.Ordinal));
        foreach (var prefix in new[] { "/a/../admin", "/a//b", "/a?x=1", "/%2e%2e" })
        {
            var problem = await ProblemAsync(client, "/v1/apps", new { name = "prefix-app", routePrefix = prefix }, HttpStatusCode.BadRequest, "validation");
            Assert.True(problem.GetProperty("errors").TryGetProperty("routePrefix", out _), prefix);
        }

        await ProblemAsync(client, "/v1/apps", new { name = "zero", shared = new { instances = 0 } }, HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(client, "/v1/apps", new { name = "extra", routePrefix = "/extra", owner = "me" }, HttpStatusCode.BadRequest, "bad-request");

        // Two apps cannot claim one prefix, whatever its case or trailing slash.
        await CreatedAsync(client, "/v1/apps", new { name = "first-claim", routePrefix = "/claimed" });
        var taken = await ProblemAsync(client, "/v1/apps", new { name = "second-claim", routePrefix = "/Claimed/" }, HttpStatusCode.BadRequest, "validation");
        Assert.Contains("first-claim", taken.GetProperty("errors").GetProperty("routePrefix")[0].GetString(), StringComparison.Ordinal);

        var release = await ProblemAsync(client, "/v1/apps/first-claim/releases", new
        {
            version = "v1",
            process = new { command = "", env = new Dictionary<string, string> { ["PORT"] = "80", ["TENANTRY_TENANT_ID"] = "x", ["tenantry_database"] = "y", ["1BAD"] = "z", ["OK_NAME"] = "fine" } },
            migrations = new object[] { Migration("orders", "CREATE TABLE orders (tenant_id TEXT);"), Migration("002_empty", "  ") },
        }, HttpStatusCode.BadRequest, "validation");
        var releaseFields = release.GetProperty("errors").EnumerateObject().Select(e => e.Name).ToHashSet();
        foreach (var field in new[] { "version", "process.command", "process.env.PORT", "process.env.TENANTRY_TENANT_ID", "process.env.tenantry_database", "process.env.1BAD", "migrations[0].id", "migrations[1].sql" })
        {
            Assert.Contains(field, releaseFields);
        }

        Assert.DoesNotContain("process.env.OK_NAME", releaseFields);
        await ProblemAsync(client, "/v1/apps/first-claim/releases", new { version = "1.0.0", process = new { command = "/bin/sh" }, migrations = Array.Empty<object>(), migrationsPath = _folder }, HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(client, "/v1/apps/first-claim/releases", new { version = "1.0.0", process = new { command = "/bin/sh" }, migrationsPath = "relative/dir" }, HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(client, "/v1/apps/first-claim/releases", new { version = "1.0.0", process = new { command = "/bin/sh" }, migrationsPath = Path.Combine(_folder, "missing") }, HttpStatusCode.UnprocessableEntity, "migrations-path-not-found");
    }

    [Fact]
    public async Task Tenant_tokens_get_403_on_every_apps_endpoint()
    {
        // A host of its own: onboarding applies every registered app's migrations, and the other tests register apps whose tables collide.
        using var own = new TenantryFactory();
        using var op = await own.OperatorAsync();
        await CreatedAsync(op, "/v1/apps", new { name = "guarded", routePrefix = "/guarded" });
        var id = await op.CreateActiveTenantAsync("apps-tenant");
        using var created = await op.PostAsJsonAsync($"/v1/tenants/{id}/clients", new { name = "deployer" });
        var client = await created.JsonAsync();
        using var tenant = own.CreateClient();
        var token = await TenantryFactory.TokenAsync(tenant, client.GetProperty("clientId").GetString()!, client.GetProperty("clientSecret").GetString()!, "");
        tenant.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

        var calls = new (HttpMethod Method, string Path, object? Body)[]
        {
            (HttpMethod.Get, "/v1/apps", null),
            (HttpMethod.Post, "/v1/apps", new { name = "sneaky", routePrefix = "/sneaky" }),
            (HttpMethod.Get, "/v1/apps/guarded", null),
            (HttpMethod.Get, "/v1/apps/guarded/releases", null),
            (HttpMethod.Post, "/v1/apps/guarded/releases", Release("9.9.9")),
        };
        foreach (var (method, path, body) in calls)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            using var response = await tenant.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{method} {path}: {(int)response.StatusCode}");
        }

        using var anonymous = own.CreateClient();
        using var unauthenticated = await anonymous.GetAsync(new Uri("/v1/apps", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        Assert.Equal(JsonValueKind.Null, (await op.GetJsonAsync("/v1/apps/guarded")).GetProperty("currentRelease").ValueKind);
        using var sneaky = await op.GetAsync(new Uri("/v1/apps/sneaky", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, sneaky.StatusCode);
    }

    [Fact]
    public async Task The_openapi_document_describes_the_apps_endpoints()
    {
        using var client = factory.CreateClient();
        var openapi = await client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Contains("\"/v1/apps\"", openapi, StringComparison.Ordinal);
        Assert.Contains("\"/v1/apps/{app}\"", openapi, StringComparison.Ordinal);
        Assert.Contains("\"/v1/apps/{app}/releases\"", openapi, StringComparison.Ordinal);
        Assert.Contains("CreateReleaseRequest", openapi, StringComparison.Ordinal);
    }
}
