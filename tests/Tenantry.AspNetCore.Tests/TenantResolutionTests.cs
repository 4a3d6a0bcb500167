using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Tenantry.AspNetCore;

namespace Tenantry.AspNetCore.Tests;

/// <summary>
/// Tenant resolution in an app behind the gateway, over real HTTP: only a context the gateway signed, unaltered,
/// reaches the app's endpoints, as <see cref="ITenantContext"/>; a dedicated instance serves its own tenant only.
/// </summary>
public sealed class TenantResolutionTests
{
    private static readonly TenantContext Acme = new()
    {
        TenantId = Guid.CreateVersion7(), Slug = "acme", Tier = "standard", Isolation = IsolationModel.Bridge,
        Subject = "acme-user", Roles = ["admin", "member"],
    };

    [Fact]
    public async Task A_context_signed_with_the_apps_key_reaches_the_endpoint_as_its_tenant()
    {
        await using var app = await TenantApp.StartAsync();
        using var response = await app.SendAsync(HttpMethod.Get, "/whoami", Acme);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(Acme.TenantId, body.GetProperty("tenantId").GetGuid());
        Assert.Equal("acme", body.GetProperty("slug").GetString());
        Assert.Equal("standard", body.GetProperty("tier").GetString());
        Assert.Equal("bridge", body.GetProperty("isolation").GetString());
        Assert.Equal("acme-user", body.GetProperty("subject").GetString());
        Assert.Equal(["admin", "member"], body.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
    }

    [Fact]
    public async Task A_request_without_a_context_gets_401_problem_details_and_never_reaches_the_app()
    {
        await using var app = await TenantApp.StartAsync();
        using var response = await app.SendAsync(HttpMethod.Get, "/whoami", tenant: null);
        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "tenant-context-missing");
        Assert.Equal(0, app.Served);
    }

    [Fact]
    public async Task A_forged_or_altered_context_is_refused_with_401()
    {
        await using var app = await TenantApp.StartAsync();
        var bravo = Guid.CreateVersion7().ToString();
        var attempts = new (string What, byte[]? Key, Action<HttpRequestMessage>? Alter)[]
        {
            ("signed with another key", RandomNumberGenerator.GetBytes(32), null),
            ("tenant id changed", null, r => Set(r, TenantContextHeaders.TenantId, bravo)),
            ("slug changed", null, r => Set(r, TenantContextHeaders.Slug, "bravo")),
            ("tier raised", null, r => Set(r, TenantContextHeaders.Tier, "premium")),
            ("isolation changed", null, r => Set(r, TenantContextHeaders.Isolation, "silo")),
            ("subject changed", null, r => Set(r, TenantContextHeaders.Subject, "someone-else")),
            ("role added", null, r => Set(r, TenantContextHeaders.Roles, "admin,member,owner")),
            ("signature removed", null, r => r.Headers.Remove(TenantContextHeaders.Signature)),
            ("signature zeroed", null, r => Set(r, TenantContextHeaders.Signature, Convert.ToBase64String(new byte[32]))),
            ("second tenant id", null, r => r.Headers.TryAddWithoutValidation(TenantContextHeaders.TenantId, bravo)),
            ("a header missing", null, r => r.Headers.Remove(TenantContextHeaders.Roles)),
        };
        foreach (var (what, key, alter) in attempts)
        {
            using var response = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, key: key, alter: alter);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{what}: {(int)response.StatusCode}");
        }

        // A context made up from scratch, without any signature.
        using (var unsigned = await app.SendAsync(HttpMethod.Get, "/whoami", tenant: null, alter: r =>
        {
            Set(r, TenantContextHeaders.TenantId, bravo);
            Set(r, TenantContextHeaders.Slug, "bravo");
            Set(r, TenantContextHeaders.Tier, "basic");
            Set(r, TenantContextHeaders.Isolation, "pool");
            Set(r, TenantContextHeaders.Subject, "x");
            Set(r, TenantContextHeaders.Roles, "admin");
        }))
        {
            await AssertProblemAsync(unsigned, HttpStatusCode.Unauthorized, "tenant-context-missing");
        }

        Assert.Equal(0, app.Served);
    }

    [Fact]
    public async Task A_dedicated_instance_serves_its_own_tenant_and_refuses_another_with_403()
    {
        await using var app = await TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Tenantry:App:TenantId"] = Acme.TenantId.ToString(),
            ["Tenantry:App:Slug"] = Acme.Slug,
        });
        using (var own = await app.SendAsync(HttpMethod.Get, "/whoami", Acme))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        // Validly signed (same gateway, same key), but for another tenant.
        using (var other = await app.SendAsync(HttpMethod.Get, "/whoami", Acme with { TenantId = Guid.CreateVersion7(), Slug = "bravo" }))
        {
            await AssertProblemAsync(other, HttpStatusCode.Forbidden, "tenant-mismatch");
        }

        Assert.Equal(1, app.Served);
    }

    [Fact]
    public async Task Health_probes_are_served_without_a_tenant_and_only_they()
    {
        await using var app = await TenantApp.StartAsync();
        using (var health = await app.SendAsync(HttpMethod.Get, "/healthz", tenant: null))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using (var near = await app.SendAsync(HttpMethod.Get, "/healthz/", tenant: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, near.StatusCode);
        }
    }

    [Fact]
    public async Task The_context_key_is_made_once_readable_by_its_owner_only_and_reused()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tenantry-aspnetcore-tests", Guid.NewGuid().ToString("N"));
        var path = Path.Combine(dir, "keys", "tenant-context.key");
        try
        {
            var made = TenantContextHeaders.LoadOrCreateKey(path);
            Assert.Equal(32, made.Length);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }

            Assert.Equal(made, TenantContextHeaders.LoadOrCreateKey(path));

            // An app on the same data directory verifies what a gateway signs with that file's key.
            await using var app = await TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal) { ["Tenantry:App:ContextKeyFile"] = path });
            Assert.Equal(made, app.Key);
            using var response = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, key: made);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Set(HttpRequestMessage request, string name, string value)
    {
        request.Headers.Remove(name);
        request.Headers.TryAddWithoutValidation(name, value);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string kind)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("https://tenantry.dev/problems/" + kind, problem.GetProperty("type").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
    }
}
