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
/// Kestrel loopback port, with its own data directory and context key; requests are signed as the gateway signs them.
/// </summary>
internal sealed class TenantApp : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _http;

    private TenantApp(WebApplication app, string dataDir, byte[] key)
    {
        _app = app;
        DataDir = dataDir;
        Key = key;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _http = new HttpClient { BaseAddress = new Uri(address) };
    }

    public string DataDir { get; }

    /// <summary>The key the app verifies contexts with (the gateway's).</summary>
    public byte[] Key { get; }

    /// <summary>How many requests reached an endpoint after the tenant resolution.</summary>
    public int Served => _served;

    private int _served;

    /// <param name="settings">More <c>Tenantry:App</c> settings (e.g. <c>TenantId</c>), over the data directory and key file.</param>
    /// <param name="map">More endpoints; <c>GET /whoami</c> (the resolved <see cref="ITenantContext"/>) and <c>GET /healthz</c> are always there.</param>
    public static async Task<TenantApp> StartAsync(IReadOnlyDictionary<string, string?>? settings = null, Action<WebApplication>? map = null)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-aspnetcore-tests", Guid.NewGuid().ToString("N"));
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Tenantry:App:DataDir"] = dataDir,
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
        await app.StartAsync();
        var key = TenantContextHeaders.LoadOrCreateKey(app.Services.GetRequiredService<IOptions<TenantryAppOptions>>().Value.ContextKeyPath);
        self = new TenantApp(app, dataDir, key);
        return self;
    }

    /// <summary>The data directory of the app serving <paramref name="http"/>.</summary>
    public static string DataDirOf(HttpContext http) => http.RequestServices.GetRequiredService<IOptions<TenantryAppOptions>>().Value.DataPath;

    /// <summary>A request with <paramref name="tenant"/>'s context signed with <paramref name="key"/> (the app's own by default); <paramref name="alter"/> may change the headers after signing.</summary>
    public Task<HttpResponseMessage> SendAsync(
        HttpMethod method, string path, TenantContext? tenant, HttpContent? content = null, byte[]? key = null, Action<HttpRequestMessage>? alter = null)
    {
        var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        if (tenant is not null)
        {
            new TenantContextHeaders(key ?? Key).Write((name, value) => request.Headers.TryAddWithoutValidation(name, value), tenant);
        }

        alter?.Invoke(request);
        return _http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
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
