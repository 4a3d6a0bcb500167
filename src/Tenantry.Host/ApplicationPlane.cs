using System.Net;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Health;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;
using Tenantry.Gateway;

namespace Tenantry.Host;

/// <summary>
/// The application plane next to the control plane: the gateway (<c>Tenantry:Ports:Gateway</c>,
/// 5081) in this process, in front of the registered apps' instances, which are processes of their
/// own (shared instances from <c>Tenantry:Ports:SharedApp</c>, 5082, up; dedicated ones from
/// <c>Tenantry:Compute:FirstDedicatedPort</c>, 5300, up). On a new data directory the bundled sample,
/// Orders.Api, is registered as the default app (<see cref="SampleApp"/>).
/// Off with <c>Tenantry:ApplicationPlane:Enabled=false</c>.
/// </summary>
internal static class ApplicationPlane
{
    public static bool Enabled(IConfiguration configuration) => configuration.GetValue("Tenantry:ApplicationPlane:Enabled", true);

    /// <summary>Wires the application plane into the control-plane host.</summary>
    public static void AddApplicationPlane(this WebApplicationBuilder builder)
    {
        // The gateway's signing key stays in this process (and gateway replicas on this data dir, or on the shared store's
        // key ring); every app instance gets its public JWKS (the current key, the next one a rotation will sign with, and
        // the retiring ones), also when this host runs the control plane alone and replicas do the gateway's work.
        builder.Services.AddSingleton(ContextKeyRing.ForControlPlane);
        builder.Services.AddHostedService<ContextKeyStartup>();
        builder.Services.AddSingleton(sp => new AppInstanceEnvironment(() => new Dictionary<string, string>
        {
            [TenantContextToken.JwksVariable] = sp.GetRequiredService<TenantContextSigningKey>().PublicJwks,
        }));
        if (!Enabled(builder.Configuration))
        {
            return;
        }

        builder.Services.AddHostedService<SampleApp>();
        builder.Services.AddHostedService<ApplicationPlaneService>();
    }

    /// <summary>The gateway's tenant-context signing key: <c>Tenantry:Gateway:ContextSigningKeyFile</c>, by default in the data dir's keys folder.</summary>
    public static string ContextSigningKeyFile(IConfiguration configuration, TenantryOptions options) =>
        configuration["Tenantry:Gateway:ContextSigningKeyFile"] is { Length: > 0 } file ? file : Path.Combine(options.DataPath, "keys", "tenant-context-es256.pem");
}

/// <summary>Starts the gateway after the control plane's services, stops it first.</summary>
internal sealed partial class ApplicationPlaneService(
    IConfiguration configuration,
    IOptions<TenantryOptions> options,
    ITenantRouteTable routes,
    RouteChanges routeChanges,
    TenantContextSigningKey contextKey,
    ITenantHealthWriter health,
    ILogger<ApplicationPlaneService> logger) : IHostedService, IAsyncDisposable
{
    private WebApplication? _gateway;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var gateway = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        var issuer = o.Issuer ?? new Uri($"http://127.0.0.1:{o.Ports.ControlPlane}/");
        gateway.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tenantry:Gateway:Authority"] = issuer.ToString(),
            ["Tenantry:Gateway:ContextSigningKeyFile"] = ApplicationPlane.ContextSigningKeyFile(configuration, o),
        });
        gateway.Configuration.AddConfiguration(configuration);
        // YARP logs every forwarded request at Information; the gateway logs its own decisions.
        gateway.Logging.AddFilter("Yarp", LogLevel.Warning);
        gateway.Logging.QuietStartFailures();
        gateway.Services.AddSingleton(routes);
        gateway.Services.AddSingleton(routeChanges);
        gateway.Services.AddSingleton(contextKey);
        gateway.Services.AddSingleton<ITenantHealthSink>(new ControlPlaneHealthSink(health));
        gateway.Services.AddTenantryGateway<ControlPlaneRouteSource>();
        gateway.WebHost.ConfigureKestrel(k => k.Listen(o.ListenIp, o.Ports.Gateway));
        _gateway = gateway.Build();
        _gateway.UseTenantryGateway();
        await _gateway.StartAsync(cancellationToken);
        Log.Started(logger, o.Ports.Gateway);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_gateway is not null)
        {
            await _gateway.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Tenant gateway listening on http://127.0.0.1:{GatewayPort}")]
        public static partial void Started(ILogger logger, int gatewayPort);
    }
}

/// <summary>
/// The gateway's routing table, read from the control plane in the same process: one read per refresh
/// gives the tenants' routes and the apps (the refresher asks for the apps right after the routes).
/// </summary>
internal sealed class ControlPlaneRouteSource(ITenantRouteTable routes, RouteChanges changes) : IGatewayRouteSource
{
    private IReadOnlyList<GatewayApp>? _apps;

    /// <summary>A tier change's freeze and switch reach this process's gateway at once.</summary>
    public IDisposable? OnChange(Action changed)
    {
        changes.Changed += changed;
        return new Unsubscribe(() => changes.Changed -= changed);
    }

    public async Task<IReadOnlyList<GatewayRoute>> LoadAsync(CancellationToken cancellationToken)
    {
        var table = await routes.ReadAsync(cancellationToken);
        _apps = [.. table.Apps.Select(ToGatewayApp)];
        return [.. table.Items.Select(ToGatewayRoute)];
    }

    /// <summary>The apps of the table <see cref="LoadAsync"/> read last; before the first read, a read of its own.</summary>
    public async Task<IReadOnlyList<GatewayApp>?> LoadAppsAsync(CancellationToken cancellationToken) =>
        _apps ?? [.. (await routes.ReadAsync(cancellationToken)).Apps.Select(ToGatewayApp)];

    /// <summary>The control plane's route entry as the gateway reads it (also for replicas that read <c>/v1/routes</c>).</summary>
    public static GatewayRoute ToGatewayRoute(TenantRouteEntry e) => new(
        e.TenantId,
        e.Slug,
        e.Tier,
        WireNames.ParseIsolation(e.Isolation),
        e.Active,
        null,
        e.Plan,
        e.Limits is { } l ? new PlanLimits { RequestsPerSecond = l.PermitsPerSecond, Burst = l.Burst, DailyQuota = l.DailyQuota } : null)
    {
        Apps = e.Mode == "dedicated" ? (e.Apps ?? new Dictionary<string, string>()).ToDictionary(a => a.Key, a => new Uri(a.Value), StringComparer.Ordinal) : null,
        Frozen = e.Frozen,
    };

    public static GatewayApp ToGatewayApp(AppRouteEntry a) => new(a.Name, a.RoutePrefix, [.. a.Shared.Select(u => new Uri(u))]);
}

/// <summary>Runs an action once, when disposed.</summary>
internal sealed class Unsubscribe(Action action) : IDisposable
{
    private Action? _action = action;

    public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
}
