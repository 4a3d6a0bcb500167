using System.Net;
using System.Reflection;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Health;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;
using Tenantry.Data;
using Tenantry.Gateway;

namespace Tenantry.Host;

/// <summary>
/// The application plane next to the control plane, in the same process: the gateway
/// (<c>Tenantry:Ports:Gateway</c>, 5081) and the shared Orders.Api instance
/// (<c>Tenantry:Ports:SharedApp</c>, 5082). Silo tenants' dedicated instances are separate
/// processes of this same program (<c>Tenantry.Host orders-app</c>), started by the local compute provider.
/// Off with <c>Tenantry:ApplicationPlane:Enabled=false</c>.
/// </summary>
internal static class ApplicationPlane
{
    public const string AppCommand = "orders-app";

    public static bool Enabled(IConfiguration configuration) => configuration.GetValue("Tenantry:ApplicationPlane:Enabled", true);

    public static int SharedAppPort(IConfiguration configuration) => configuration.GetValue("Tenantry:Ports:SharedApp", new PortOptions().SharedApp);

    /// <summary>Wires the application plane into the control-plane host.</summary>
    public static void AddApplicationPlane(this WebApplicationBuilder builder)
    {
        // The gateway's signing key stays in this process (and gateway replicas on this data dir); the shared app and every
        // dedicated instance get its public JWKS, also when this host runs the control plane alone and replicas do the gateway's work.
        builder.Services.AddSingleton(sp => TenantContextSigningKey.LoadOrCreate(
            ContextSigningKeyFile(builder.Configuration, sp.GetRequiredService<IOptions<TenantryOptions>>().Value)));
        builder.Services.AddSingleton(sp => new AppInstanceEnvironment(() => new Dictionary<string, string>
        {
            [TenantContextToken.JwksVariable] = sp.GetRequiredService<TenantContextSigningKey>().PublicJwks,
        }));
        if (!Enabled(builder.Configuration))
        {
            return;
        }

        // Silo instances run this program again in app mode, unless configured otherwise.
        if (string.IsNullOrEmpty(builder.Configuration["Tenantry:Compute:AppCommand"]))
        {
            var (command, arguments) = SelfCommand();
            var defaults = new Dictionary<string, string?> { ["Tenantry:Compute:AppCommand"] = command };
            for (var i = 0; i < arguments.Length; i++)
            {
                defaults[$"Tenantry:Compute:AppArguments:{i}"] = arguments[i];
            }

            builder.Configuration.AddInMemoryCollection(defaults);
        }

        builder.Services.AddHostedService<ApplicationPlaneService>();
    }

    /// <summary>The gateway's tenant-context signing key: <c>Tenantry:Gateway:ContextSigningKeyFile</c>, by default in the data dir's keys folder.</summary>
    public static string ContextSigningKeyFile(IConfiguration configuration, TenantryOptions options) =>
        configuration["Tenantry:Gateway:ContextSigningKeyFile"] is { Length: > 0 } file ? file : Path.Combine(options.DataPath, "keys", "tenant-context-es256.pem");

    /// <summary>How to run this program again: <c>dotnet Tenantry.Host.dll orders-app</c> or <c>Tenantry.Host orders-app</c>.</summary>
    private static (string Command, string[] Arguments) SelfCommand()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        var assembly = Assembly.GetEntryAssembly()?.Location ?? typeof(ApplicationPlane).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? (process, [assembly, AppCommand])
            : (process, [AppCommand]);
    }

    /// <summary>The settings an app instance reads (data dir), layered under the host's own configuration.</summary>
    public static Dictionary<string, string?> AppDefaults(TenantryOptions options, TenantContextSigningKey contextKey) => new()
    {
        ["Tenantry:App:DataDir"] = options.DataPath,
        ["Tenantry:App:ContextJwks"] = contextKey.PublicJwks,
    };
}

/// <summary>Starts the shared app and the gateway after the control plane's services, stops them first.</summary>
internal sealed partial class ApplicationPlaneService(
    IConfiguration configuration,
    IOptions<TenantryOptions> options,
    ITenantRouteTable routes,
    ITenantDataLocator locator,
    ITenantStorageQuota storageQuota,
    TenantContextSigningKey contextKey,
    ITenantHealthWriter health,
    ILogger<ApplicationPlaneService> logger) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;
    private WebApplication? _gateway;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var appPort = ApplicationPlane.SharedAppPort(configuration);
        // The gateway hands shared-instance requests to the app in this process (no loopback HTTP hop), unless turned off.
        var handoff = configuration.GetValue("Tenantry:ApplicationPlane:InProcessHandoff", true) ? new InProcessUpstream() : null;
        _app = Orders.Api.OrdersApp.Build([], b =>
        {
            handoff?.AttachTo(b.Services);
            b.Logging.QuietStartFailures();
            b.Configuration.AddInMemoryCollection(ApplicationPlane.AppDefaults(o, contextKey));
            b.Configuration.AddConfiguration(configuration);
            // The control plane's view of each tenant: its placement while active, its plan's storage quota.
            b.Services.AddSingleton(locator);
            b.Services.AddSingleton(storageQuota);
            b.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, appPort));
        });

        var gateway = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        var issuer = o.Issuer ?? new Uri($"http://127.0.0.1:{o.Ports.ControlPlane}/");
        gateway.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Tenantry:Gateway:Authority"] = issuer.ToString(),
            ["Tenantry:Gateway:SharedUpstream"] = $"http://127.0.0.1:{appPort}/",
            ["Tenantry:Gateway:ContextSigningKeyFile"] = ApplicationPlane.ContextSigningKeyFile(configuration, o),
        });
        gateway.Configuration.AddConfiguration(configuration);
        // YARP logs every forwarded request at Information; the gateway logs its own decisions.
        gateway.Logging.AddFilter("Yarp", LogLevel.Warning);
        gateway.Logging.QuietStartFailures();
        gateway.Services.AddSingleton(routes);
        if (handoff is not null)
        {
            gateway.Services.AddSingleton(handoff);
        }

        gateway.Services.AddSingleton(contextKey);
        gateway.Services.AddSingleton<ITenantHealthSink>(new ControlPlaneHealthSink(health));
        gateway.Services.AddTenantryGateway<ControlPlaneRouteSource>();
        gateway.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, o.Ports.Gateway));
        _gateway = gateway.Build();
        _gateway.UseTenantryGateway();

        await _app.StartAsync(cancellationToken);
        await _gateway.StartAsync(cancellationToken);
        Log.Started(logger, o.Ports.Gateway, appPort);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_gateway is not null)
        {
            await _gateway.StopAsync(cancellationToken);
        }

        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }

        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Tenant gateway listening on http://127.0.0.1:{GatewayPort}; shared Orders.Api instance on http://127.0.0.1:{AppPort}")]
        public static partial void Started(ILogger logger, int gatewayPort, int appPort);
    }
}

/// <summary>The gateway's routing table, read from the control plane in the same process.</summary>
internal sealed class ControlPlaneRouteSource(ITenantRouteTable routes) : IGatewayRouteSource
{
    public async Task<IReadOnlyList<GatewayRoute>> LoadAsync(CancellationToken cancellationToken)
    {
        var entries = await routes.ListAsync(cancellationToken);
        return [.. entries.Select(ToGatewayRoute)];
    }

    /// <summary>The control plane's route entry as the gateway reads it (also for replicas that read <c>/v1/routes</c>).</summary>
    public static GatewayRoute ToGatewayRoute(TenantRouteEntry e) => new(
        e.TenantId,
        e.Slug,
        e.Tier,
        WireNames.ParseIsolation(e.Isolation),
        e.Active,
        e.Mode == "dedicated" ? new Uri(e.Upstream) : null,
        e.Plan,
        e.Limits is { } l ? new PlanLimits { RequestsPerSecond = l.PermitsPerSecond, Burst = l.Burst, DailyQuota = l.DailyQuota } : null);
}
