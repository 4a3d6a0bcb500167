using System.Net;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// The in-process handoff to the shared app: the app sees the request and the connection, writes the
/// response, and sees nothing the front pipeline added (its user, items or services).
/// </summary>
public sealed class InProcessUpstreamTests : IAsyncLifetime
{
    private readonly InProcessUpstream _upstream = new();
    private WebApplication _app = null!;
    private WebApplication _front = null!;
    private HttpClient _client = null!;
    private HttpClient _direct = null!;

    public async Task InitializeAsync()
    {
        var app = WebApplication.CreateSlimBuilder();
        app.WebHost.UseUrls("http://127.0.0.1:0");
        _upstream.AttachTo(app.Services);
        app.Services.AddSingleton(new Marker("app"));
        _app = app.Build();
        _app.MapGet("/echo", (HttpContext http) => new
        {
            authenticated = http.User.Identity?.IsAuthenticated == true,
            items = http.Items.Count,
            services = http.RequestServices.GetService<Marker>()?.Name,
            authorization = http.Request.Headers.Authorization.ToString(),
            path = http.Request.Path.Value + http.Request.QueryString.Value,
            localPort = http.Connection.LocalPort,
        });
        _app.MapPost("/upload", async (HttpContext http) =>
        {
            var buffer = new byte[64 * 1024];
            long total = 0;
            for (int read; (read = await http.Request.Body.ReadAsync(buffer)) > 0;)
            {
                total += read;
            }

            return new { bytes = total };
        });
        _app.MapGet("/throws", string () => throw new InvalidOperationException("the app failed"));
        await _app.StartAsync();

        var front = WebApplication.CreateSlimBuilder();
        front.WebHost.UseUrls("http://127.0.0.1:0");
        front.Services.AddSingleton(new Marker("front"));
        _front = front.Build();
        _front.Run(async http =>
        {
            // What a gateway's pipeline leaves behind: an authenticated user, items, its own services.
            http.User = new ClaimsPrincipal(new ClaimsIdentity([new Claim("sub", "caller")], "Bearer"));
            http.Items["front"] = true;
            http.Request.Headers.Authorization = default;
            await _upstream.InvokeAsync(http);
        });
        await _front.StartAsync();

        _client = new HttpClient { BaseAddress = new Uri(_front.Urls.Single()) };
        _direct = new HttpClient { BaseAddress = new Uri(_app.Urls.Single()) };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        _direct.Dispose();
        await _front.DisposeAsync();
        await _app.DisposeAsync();
    }

    [Fact]
    public async Task The_app_answers_on_the_front_connection_and_sees_nothing_the_front_pipeline_added()
    {
        Assert.True(_upstream.IsAvailable);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/echo?x=1");
        request.Headers.Authorization = new("Bearer", "secret-token");
        using var response = await _client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var echo = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.False(echo.GetProperty("authenticated").GetBoolean());
        Assert.Equal(0, echo.GetProperty("items").GetInt32());
        Assert.Equal("app", echo.GetProperty("services").GetString());
        Assert.Equal("", echo.GetProperty("authorization").GetString());
        Assert.Equal("/echo?x=1", echo.GetProperty("path").GetString());
        Assert.Equal(new Uri(_front.Urls.Single()).Port, echo.GetProperty("localPort").GetInt32());

        // The app still listens on its own port.
        var direct = await _direct.GetFromJsonAsync<JsonElement>("/echo");
        Assert.Equal(new Uri(_app.Urls.Single()).Port, direct.GetProperty("localPort").GetInt32());
    }

    [Fact]
    public async Task A_streamed_request_body_reaches_the_app_whole()
    {
        var body = new byte[3 * 1024 * 1024 + 17];
        Random.Shared.NextBytes(body);
        using var content = new StreamContent(new MemoryStream(body));
        using var response = await _client.PostAsync(new Uri("/upload", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body.Length, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("bytes").GetInt64());
    }

    [Fact]
    public async Task An_app_failure_is_a_500_and_the_next_request_on_the_connection_is_served()
    {
        using (var failed = await _client.GetAsync(new Uri("/throws", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }

        using var next = await _client.GetAsync(new Uri("/echo", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task Once_the_app_stops_it_takes_no_more_requests()
    {
        var upstream = new InProcessUpstream();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        upstream.AttachTo(builder.Services);
        await using var app = builder.Build();
        Assert.False(upstream.IsAvailable);
        await app.StartAsync();
        Assert.True(upstream.IsAvailable);
        await app.StopAsync();
        Assert.False(upstream.IsAvailable);
    }

    private sealed record Marker(string Name);
}
