using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;
using Tenantry.Gateway;
using Tenantry.Testing;

namespace Tenantry.Packaging.Tests;

/// <summary>One app made from the template and built against the packed packages, for every test of the class.</summary>
public sealed class TemplateAppFixture : IAsyncLifetime
{
    private TemplateApp? _app;

    public TemplateApp App => _app ?? throw new InvalidOperationException("The app is not made yet.");

    public async Task InitializeAsync() => _app = await TemplateApp.CreateAsync("Shop");

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}

/// <summary>
/// The .NET path: <c>dotnet pack</c>, <c>dotnet new install</c>, <c>dotnet new tenantry-app</c>, <c>dotnet build</c>
/// against the packed packages, and the built app run as a real process under the instance contract.
/// </summary>
public sealed class TemplateAppTests(TemplateAppFixture fixture) : IClassFixture<TemplateAppFixture>
{
    private static readonly TenantContext Acme = new()
    {
        TenantId = Guid.Parse("0190a5f2-7c3e-7b4a-9d1e-2f3a4b5c6d7e"), Slug = "acme", Tier = "basic", Isolation = IsolationModel.Pool,
        Subject = "0190a5f2-7c3e-7b4a-9d1e-2f3a4b5c6d7e:ada@acme.example", Roles = ["admin"],
    };

    private static readonly TenantContext Bolt = new()
    {
        TenantId = Guid.Parse("0190a5f2-7c3e-7b4a-9d1e-8f9a0b1c2d3e"), Slug = "bolt", Tier = "basic", Isolation = IsolationModel.Pool,
        Subject = "0190a5f2-7c3e-7b4a-9d1e-8f9a0b1c2d3e:bo@bolt.example", Roles = ["admin"],
    };

    private TemplateApp App => fixture.App;

    [Fact]
    public void The_app_references_the_packed_packages_and_its_manifest_says_how_Tenantry_runs_it()
    {
        var project = File.ReadAllText(Path.Combine(App.Folder, "Shop.csproj"));
        Assert.Contains($"<PackageReference Include=\"Tenantry.AspNetCore\" Version=\"{App.Version}\" />", project, StringComparison.Ordinal);
        Assert.Contains($"<PackageReference Include=\"Tenantry.Data\" Version=\"{App.Version}\" />", project, StringComparison.Ordinal);
        Assert.DoesNotContain("ProjectReference", project, StringComparison.Ordinal);

        // Restored as packages, from the packed folder and nowhere else.
        foreach (var id in new[] { "tenantry.aspnetcore", "tenantry.data", "tenantry.abstractions" })
        {
            var metadata = JsonNode.Parse(File.ReadAllText(Path.Combine(App.PackageCache, id, App.Version, ".nupkg.metadata")))!;
            Assert.Equal(App.PackagesFolder, metadata["source"]!.GetValue<string>().TrimEnd('/'));
        }

        var manifest = App.ReadManifest();
        Assert.Equal("shop", App.Name);
        Assert.Equal("/shop", manifest["routePrefix"]!.GetValue<string>());
        Assert.Equal("/healthz", manifest["healthPath"]!.GetValue<string>());
        Assert.Equal(1, manifest["shared"]!["instances"]!.GetValue<int>());
        var release = manifest["release"]!;
        Assert.Equal("1.0.0", release["version"]!.GetValue<string>());
        Assert.Equal("dotnet", release["process"]!["command"]!.GetValue<string>());
        Assert.Equal(["bin/Release/net10.0/Shop.dll"], release["process"]!["args"]!.AsArray().Select(a => a!.GetValue<string>()));
        Assert.Equal(".", release["process"]!["workingDirectory"]!.GetValue<string>());
        Assert.Equal("migrations", release["migrationsPath"]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(App.Folder, "bin", "Release", "net10.0", "Shop.dll")));
        Assert.Equal(["0001_create_items.sql"], App.MigrationFiles().Select(Path.GetFileName));
    }

    [Fact]
    public async Task The_built_app_runs_on_the_instance_environment_and_keeps_each_tenants_items_apart()
    {
        var pool = Path.Combine(App.WorkFolder, $"pool-{Guid.NewGuid():N}.db");
        await ApplyMigrationsAsync(pool);
        using var key = TenantContextSigningKey.FromPem(await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Resources", "tenant-context-test-key.pem")));
        var gateway = Signer(key, App.Name);
        await using var instance = await AppInstance.StartAsync(App, new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [TenantryEnvironment.App] = App.Name,
            [TenantryEnvironment.Release] = "1.0.0",
            [TenantryEnvironment.Database] = $"Data Source={pool}",
            [TenantryEnvironment.ContextJwks] = key.PublicJwks,
        });

        // The health path answers without a tenant, and names the release.
        var health = await instance.Http.GetFromJsonAsync<JsonElement>(new Uri("/healthz", UriKind.Relative));
        Assert.Equal("1.0.0", health.GetProperty("release").GetString());

        // No tenant context: 401, and nothing is read or written.
        using (var anonymous = await instance.Http.GetAsync(new Uri("/shop/items", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        using (var created = await SendAsync(instance, HttpMethod.Post, gateway.Sign(Acme, dedicated: false), new { name = "anvil" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            var item = await created.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("anvil", item.GetProperty("name").GetString());
            Assert.EndsWith("/shop/items/" + item.GetProperty("id").GetGuid(), created.Headers.Location!.ToString(), StringComparison.Ordinal);
        }

        using (var created = await SendAsync(instance, HttpMethod.Post, gateway.Sign(Bolt, dedicated: false), new { name = "bolt cutter" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        Assert.Equal(["anvil"], await NamesAsync(instance, gateway.Sign(Acme, dedicated: false)));
        Assert.Equal(["bolt cutter"], await NamesAsync(instance, gateway.Sign(Bolt, dedicated: false)));

        // A bad item is the caller's mistake, not the server's.
        using (var empty = await SendAsync(instance, HttpMethod.Post, gateway.Sign(Acme, dedicated: false), new { name = " " }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
            Assert.Equal("application/problem+json", empty.Content.Headers.ContentType?.MediaType);
        }

        // A context for another app (the default audience) is not one for this app.
        using (var orders = await SendAsync(instance, HttpMethod.Get, Signer(key, TenantContextToken.DefaultAudience).Sign(Acme, dedicated: false)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, orders.StatusCode);
        }

        // A silo tenant's context at this shared instance is refused before its data is looked for.
        using (var silo = await SendAsync(instance, HttpMethod.Get, gateway.Sign(Bolt with { Isolation = IsolationModel.Silo }, dedicated: false)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, silo.StatusCode);
        }
    }

    [Fact]
    public async Task The_created_app_registered_with_a_host_serves_a_pool_and_a_silo_tenant_through_the_gateway()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp));
        using var op = await host.OperatorClientAsync();

        // Registered from its manifest as `tenantry apps register` sends it: paths made absolute from the app's folder.
        var manifest = App.ReadManifest();
        var release = manifest["release"]!;
        var process = release["process"]!;
        using (var app = await op.PostAsJsonAsync("/v1/apps", new
        {
            name = App.Name,
            routePrefix = manifest["routePrefix"]!.GetValue<string>(),
            healthPath = manifest["healthPath"]!.GetValue<string>(),
            shared = new { instances = manifest["shared"]!["instances"]!.GetValue<int>() },
        }))
        {
            Assert.True(app.StatusCode == HttpStatusCode.Created, await app.Content.ReadAsStringAsync());
        }

        using (var created = await op.PostAsJsonAsync($"/v1/apps/{App.Name}/releases", new
        {
            version = release["version"]!.GetValue<string>(),
            process = new
            {
                command = process["command"]!.GetValue<string>() == "dotnet" ? TenantryHost.DotnetPath() : process["command"]!.GetValue<string>(),
                args = process["args"]!.AsArray().Select(a => a!.GetValue<string>()).ToArray(),
                workingDirectory = Path.GetFullPath(Path.Combine(App.Folder, process["workingDirectory"]!.GetValue<string>())),
            },
            migrationsPath = Path.GetFullPath(Path.Combine(App.Folder, release["migrationsPath"]!.GetValue<string>())),
        }))
        {
            Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        }

        var pool = await host.OnboardAsync(op, "shop-pool", "basic");
        var silo = await host.OnboardAsync(op, "shop-silo", "premium");
        foreach (var tenant in new[] { pool, silo })
        {
            using var client = tenant.Client();
            using var item = await client.PostAsJsonAsync("/shop/items", new { name = "anvil of " + tenant.Slug });
            Assert.True(item.StatusCode == HttpStatusCode.Created, $"{tenant.Slug}: {item.StatusCode} {await item.Content.ReadAsStringAsync()}\n{host.Output}");
        }

        foreach (var tenant in new[] { pool, silo })
        {
            using var client = tenant.Client();
            var items = await client.GetFromJsonAsync<JsonElement>("/shop/items");
            Assert.Equal(["anvil of " + tenant.Slug], items.EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        }
    }

    private static TenantContextSigner Signer(TenantContextSigningKey key, string audience) =>
        new(key, Options.Create(new GatewayOptions { ContextAudience = audience }), TimeProvider.System);

    private static async Task<HttpResponseMessage> SendAsync(AppInstance instance, HttpMethod method, string context, object? body = null)
    {
        using var request = new HttpRequestMessage(method, new Uri("/shop/items", UriKind.Relative)) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.TryAddWithoutValidation(TenantContextToken.Header, context);
        return await instance.Http.SendAsync(request);
    }

    private static async Task<List<string>> NamesAsync(AppInstance instance, string context)
    {
        using var response = await SendAsync(instance, HttpMethod.Get, context);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var items = await response.Content.ReadFromJsonAsync<JsonElement>();
        return [.. items.EnumerateArray().Select(i => i.GetProperty("name").GetString()!)];
    }

    /// <summary>The app's migrations applied to a new SQLite pool file, in order, as plain SQL.</summary>
    private async Task ApplyMigrationsAsync(string file)
    {
        await using var connection = new SqliteConnection($"Data Source={file};Pooling=False");
        await connection.OpenAsync();
        foreach (var migration in App.MigrationFiles())
        {
            await using var command = connection.CreateCommand();
            command.CommandText = await File.ReadAllTextAsync(migration);
            await command.ExecuteNonQueryAsync();
        }
    }
}
