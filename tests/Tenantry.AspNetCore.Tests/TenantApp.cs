using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;

namespace Tenantry.AspNetCore.Tests;

/// <summary>
/// An app behind the gateway as a user writes one (<c>AddTenantryApp</c>, <c>UseTenantResolution</c>) on a real
/// Kestrel loopback port, with its own data directory and the public JWKS of its own gateway key (in <c>TENANTRY_CONTEXT_JWKS</c>,
/// as the host passes it); requests carry a tenant-context token signed as the gateway signs them.
/// </summary>
internal sealed class TenantApp : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _http;

    private TenantApp(WebApplication app, string dataDir, TestContextKey key, bool dedicated)
    {
        _app = app;
        DataDir = dataDir;
        Key = key;
        _dedicated = dedicated;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _http = new HttpClient { BaseAddress = new Uri(address) };
    }

    public string DataDir { get; }

    /// <summary>The gateway's key, whose public JWKS the app verifies contexts with.</summary>
    public TestContextKey Key { get; }

    private readonly bool _dedicated;

    /// <summary>How many requests reached an endpoint after the tenant resolution.</summary>
    public int Served => _served;

    private int _served;

    /// <param name="settings">More <c>Tenantry:App</c> settings (e.g. <c>TenantId</c>), over the data directory and JWKS.</param>
    /// <param name="map">More endpoints; <c>GET /whoami</c> (the resolved <see cref="ITenantContext"/>) and <c>GET /healthz</c> are always there.</param>
    public static async Task<TenantApp> StartAsync(IReadOnlyDictionary<string, string?>? settings = null, Action<WebApplication>? map = null)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-aspnetcore-tests", Guid.NewGuid().ToString("N"));
        var key = TestContextKey.Create();
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Tenantry:App:DataDir"] = dataDir,
            [TenantContextToken.JwksVariable] = key.Jwks,
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.Services.AddTenantryApp();
        var app = builder.Build();
        TenantApp? self = null;
        app.UseTenantResolution();
        app.Use((http, next) =>
        {
            Interlocked.Increment(ref self!._served);
            return next(http);
        });
        app.MapGet("/healthz", () => "ok");
        app.MapGet("/whoami", (ITenantContext tenant) => new { tenant.TenantId, tenant.Slug, tenant.Tier, Isolation = tenant.Isolation.ToWire(), tenant.Subject, tenant.Roles });
        map?.Invoke(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            key.Dispose();
            await app.DisposeAsync();
            throw;
        }

        self = new TenantApp(app, dataDir, key, app.Services.GetRequiredService<IOptions<TenantryAppOptions>>().Value.TenantId is not null);
        return self;
    }

    /// <summary>The data directory of the app serving <paramref name="http"/>.</summary>
    public static string DataDirOf(HttpContext http) => http.RequestServices.GetRequiredService<IOptions<TenantryAppOptions>>().Value.DataPath;

    /// <summary>
    /// A request with <paramref name="tenant"/>'s context signed with <paramref name="key"/> (the app's gateway's by default), as the
    /// gateway sends it to this instance (for a dedicated one, with the tenant in the audience); <paramref name="alter"/> may change the headers after signing.
    /// </summary>
    public Task<HttpResponseMessage> SendAsync(
        HttpMethod method, string path, TenantContext? tenant, HttpContent? content = null, TestContextKey? key = null, Action<HttpRequestMessage>? alter = null)
    {
        var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        if (tenant is not null)
        {
            request.Headers.TryAddWithoutValidation(TenantContextToken.Header, (key ?? Key).Sign(tenant, _dedicated));
        }

        alter?.Invoke(request);
        return _http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        Key.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
