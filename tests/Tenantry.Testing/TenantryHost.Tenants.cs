using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace Tenantry.Testing;

public sealed partial class TenantryHost
{
    /// <summary>Onboards a tenant, waits until it is active, invites its admin and logs in: returns its id and a gateway client with the admin's token.</summary>
    public async Task<TenantHandle> OnboardAsync(HttpClient op, string slug, string tier)
    {
        ArgumentNullException.ThrowIfNull(op);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tenants")
        {
            Content = JsonContent.Create(new { name = $"Tenant {slug}", slug, tier, adminEmail = $"admin@{slug}.test" }),
        };
        request.Headers.Add("Idempotency-Key", "onboard-" + slug);
        using var created = await op.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await WaitForStatusAsync(op, id, "active");
        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = $"admin@{slug}.test", role = "admin" });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("initialPassword").GetString()!;
        var token = await LoginAsync($"admin@{slug}.test", password, slug);
        return new TenantHandle(Guid.Parse(id), slug, tier, token, password, this);
    }

    /// <summary>A tenant user's access token (password grant).</summary>
    public async Task<string> LoginAsync(string email, string password, string tenant)
    {
        using var http = new HttpClient { BaseAddress = ControlPlane };
        using var response = await PasswordGrantAsync(http, email, password, tenant);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    public static Task<HttpResponseMessage> PasswordGrantAsync(HttpClient http, string email, string password, string tenant)
    {
        ArgumentNullException.ThrowIfNull(http);
        return http.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password",
            ["username"] = email,
            ["password"] = password,
            ["tenant"] = tenant,
        }));
    }

    /// <summary>Waits (at most 60 s) until the tenant's status is <paramref name="status"/>.</summary>
    public static async Task WaitForStatusAsync(HttpClient op, string id, string status)
    {
        ArgumentNullException.ThrowIfNull(op);
        var clock = Stopwatch.StartNew();
        var last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var tenant = await op.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative));
            last = tenant.GetProperty("status").GetString()!;
            if (last == status)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"Tenant {id} stayed {last}, expected {status}.");
    }
}

/// <summary>An onboarded tenant and its admin's token.</summary>
public sealed record TenantHandle(Guid Id, string Slug, string Tier, string Token, string Password, TenantryHost Host)
{
    /// <summary>A client of the gateway with this tenant's token (or <paramref name="token"/>).</summary>
    public HttpClient Client(string? token = null)
    {
        var client = new HttpClient { BaseAddress = Host.Gateway };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token ?? Token);
        return client;
    }
}
