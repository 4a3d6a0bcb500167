using System.Net;
using System.Text;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Http;

/// <summary>A property given twice in a request body is refused (400 naming it), never resolved silently to one of its values.</summary>
public sealed class DuplicatePropertyTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Fact]
    public async Task A_tenant_with_its_tier_given_twice_is_refused_and_not_created()
    {
        using var op = await factory.OperatorAsync();
        using var response = await SendAsync(op, HttpMethod.Post, "/v1/tenants",
            """{"name":"Dup","slug":"dup-tier","tier":"premium","tier":"basic","adminEmail":"a@dup-tier.test"}""");
        await AssertNamesAsync(response, "tier");
        using var missing = await op.GetAsync(new Uri("/v1/tenants/dup-tier", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task A_merge_patch_with_a_repeated_property_is_refused()
    {
        using var op = await factory.OperatorAsync();
        var id = await op.CreateActiveTenantAsync("dup-patch");
        var tenant = await op.GetJsonAsync($"/v1/tenants/{id}");
        using var request = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{id}")
        {
            Content = new StringContent("""{"name":"One","name":"Two"}""", Encoding.UTF8, "application/merge-patch+json"),
        };
        request.Headers.TryAddWithoutValidation("If-Match", "*");
        using var response = await op.SendAsync(request);
        await AssertNamesAsync(response, "name");
        Assert.Equal(tenant.GetProperty("name").GetString(), (await op.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("name").GetString());
    }

    [Theory]
    [InlineData("/v1/plans", """{"id":"dup-plan","name":"Dup","tier":"basic","tier":"premium","currency":"EUR","basePrice":1}""", "tier", "$")]
    [InlineData("/v1/policies/validate", """{"document":{"Version":"2012-10-17","Statement":[{"Sid":"a"},{"Effect":"Deny","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}}""", "Effect", "$.document.Statement[1]")]
    [InlineData("/v1/tenants/dup-none/users", """{"email":"a@dup.test","role":"member","role":"admin"}""", "role", "$")]
    public async Task Other_bodies_with_a_repeated_property_are_refused(string path, string body, string property, string at)
    {
        using var op = await factory.OperatorAsync();
        using var response = await SendAsync(op, HttpMethod.Post, path, body);
        await AssertNamesAsync(response, property, at);
    }

    [Fact]
    public async Task A_policy_template_with_a_repeated_property_is_refused()
    {
        using var op = await factory.OperatorAsync();
        using var response = await SendAsync(op, HttpMethod.Put, "/v1/policies/templates/basic",
            """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Resource":"arn:aws:s3:::x/*"}]}""");
        await AssertNamesAsync(response, "Resource");
    }

    [Fact]
    public async Task A_usage_event_with_a_field_given_twice_is_rejected_by_name()
    {
        using var op = await factory.OperatorAsync();
        await op.CreateActiveTenantAsync("dup-usage");
        await op.CreateActiveTenantAsync("dup-usage-other");
        using var response = await SendAsync(op, HttpMethod.Post, "/v1/usage/events", """
            [
              {"id": "dup-1", "source": "test", "type": "api_calls", "subject": "dup-usage"},
              {"id": "dup-2", "source": "test", "type": "api_calls", "subject": "dup-usage", "subject": "dup-usage-other"}
            ]
            """);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var reply = await response.JsonAsync();
        Assert.Equal(1, reply.GetProperty("accepted").GetInt32());
        var rejected = Assert.Single(reply.GetProperty("rejected").EnumerateArray());
        Assert.Equal(1, rejected.GetProperty("index").GetInt32());
        Assert.Contains("'subject'", rejected.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, string path, string json) =>
        client.SendAsync(new HttpRequestMessage(method, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") });

    private static async Task AssertNamesAsync(HttpResponseMessage response, string property, string? at = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.JsonAsync();
        Assert.Equal("https://tenantry.dev/problems/duplicate-property", problem.GetProperty("type").GetString());
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains($"'{property}'", detail, StringComparison.Ordinal);
        if (at is not null)
        {
            Assert.Contains($" at {at};", detail, StringComparison.Ordinal);
        }
    }
}
