using System.Net;
using System.Net.Http.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Events;

/// <summary>The SSRF guard with its default (private networks refused), through the API.</summary>
public sealed class WebhookGuardTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Theory]
    [InlineData("http://hooks.example.com/tenantry", "https")]
    [InlineData("https://127.0.0.1/hook", "loopback")]
    [InlineData("https://localhost:8443/hook", "loopback")]
    [InlineData("https://[::1]/hook", "loopback")]
    [InlineData("https://10.1.2.3/hook", "private")]
    [InlineData("https://172.20.0.5/hook", "private")]
    [InlineData("https://192.168.1.10/hook", "private")]
    [InlineData("https://169.254.169.254/latest/meta-data", "link-local")]
    [InlineData("https://[fe80::1]/hook", "link-local")]
    [InlineData("https://[fd12:3456::1]/hook", "unique local")]
    [InlineData("https://100.64.0.1/hook", "CGNAT")]
    [InlineData("https://224.0.0.1/hook", "multicast")]
    [InlineData("https://0.0.0.0/hook", "unspecified")]
    [InlineData("https://[::ffff:10.0.0.1]/hook", "private")]
    public async Task A_private_or_plain_http_url_is_refused_with_a_clear_problem(string url, string reason)
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.PostAsJsonAsync("/v1/webhooks", new { url, events = new[] { "tenant.*" } });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        var message = problem.GetProperty("errors").GetProperty("url")[0].GetString()!;
        Assert.Contains(reason, message, StringComparison.Ordinal);
        Assert.Empty((await client.GetJsonAsync("/v1/webhooks")).GetProperty("items").EnumerateArray());
    }

    [Theory]
    [InlineData("/v1/events?cursor=not-a-cursor")]
    [InlineData("/v1/events?cursor=LTE")]
    [InlineData("/v1/mails?cursor=not-a-cursor")]
    public async Task A_cursor_the_api_did_not_return_is_a_problem_naming_the_cursor(string path)
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty("cursor", out _));
    }
}
