using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Tenantry.Gateway;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// GET /v1/app-data tells a shared instance where a pool or bridge tenant's data lives, for a
/// tenant-context token only the gateway can sign; every other caller learns nothing.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class AppDataTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_shared_instance_learns_a_pool_or_bridge_tenants_database_only_with_the_gateways_token_for_that_tenant()
    {
        using var http = new HttpClient { BaseAddress = platform.Host.ControlPlane };
        using var hostKey = TenantContextSigningKey.LoadOrCreate(ContextTokens.KeyFile(platform.Host.DataDir));
        var acme = Context(platform.Acme.Id, "acme", "basic", IsolationModel.Pool);
        var bolt = Context(platform.Bolt.Id, "bolt", "standard", IsolationModel.Bridge);

        var pool = await AskAsync(http, ContextTokens.Sign(hostKey, acme));
        Assert.Equal(HttpStatusCode.OK, pool.Status);
        Assert.Equal("pool", pool.Body.GetProperty("isolation").GetString());
        Assert.Equal("Data Source=" + Path.Combine(platform.Host.DataDir, "databases", "pool.db"), pool.Body.GetProperty("database").GetString());

        var bridge = await AskAsync(http, ContextTokens.Sign(hostKey, bolt));
        Assert.Equal(HttpStatusCode.OK, bridge.Status);
        Assert.Equal("Data Source=" + Path.Combine(platform.Host.DataDir, "databases", "bridge", "bolt.db"), bridge.Body.GetProperty("database").GetString());

        using var attackerEcdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var attackerKey = TenantContextSigningKey.FromPem(attackerEcdsa.ExportPkcs8PrivateKeyPem());
        var mega = Context(platform.Mega.Id, "mega", "premium", IsolationModel.Silo);
        foreach (var (name, token, status) in new (string, string?, HttpStatusCode)[]
        {
            ("no token", null, HttpStatusCode.Unauthorized),
            ("not a token", "not-a-token", HttpStatusCode.Unauthorized),
            ("a token signed by another key", ContextTokens.Sign(attackerKey, acme), HttpStatusCode.Unauthorized),
            ("an expired token", ContextTokens.Sign(hostKey, acme, at: DateTimeOffset.UtcNow.AddMinutes(-2)), HttpStatusCode.Unauthorized),
            ("a token for an app that is not registered", ContextTokens.Sign(hostKey, acme, audience: "billing"), HttpStatusCode.Unauthorized),
            ("a silo tenant's token", ContextTokens.Sign(hostKey, mega), HttpStatusCode.Forbidden),
            ("a silo tenant's token for its dedicated instance", ContextTokens.Sign(hostKey, mega, dedicated: true), HttpStatusCode.Forbidden),
        })
        {
            var answer = await AskAsync(http, token);
            Assert.True(answer.Status == status, $"{name}: {(int)answer.Status}");
            Assert.False(answer.Body.ValueKind == JsonValueKind.Object && answer.Body.TryGetProperty("database", out _), $"{name}: a database was named");
        }
    }

    private static AspNetCore.TenantContext Context(Guid id, string slug, string tier, IsolationModel isolation) => new()
    {
        TenantId = id, Slug = slug, Tier = tier, Isolation = isolation, Subject = "probe", Roles = [],
    };

    private static async Task<(HttpStatusCode Status, JsonElement Body)> AskAsync(HttpClient http, string? token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/app-data");
        if (token is not null)
        {
            request.Headers.Add(AspNetCore.TenantContextToken.Header, token);
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(text));
    }
}
