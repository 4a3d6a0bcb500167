using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Routing;
using Tenantry.ControlPlane.Telemetry;
using Tenantry.Gateway;

namespace Tenantry.Host;

/// <summary>
/// <c>Tenantry.Host gateway</c>: one more gateway replica, apart from the control plane. It reads the
/// routing table from <c>GET /v1/routes</c> of the control plane (<c>Tenantry:Gateway:Authority</c>, also
/// the token issuer) with the <c>gateway</c> client, whose only scope is <c>tenantry:routes</c> (its secret is the
/// host's <c>gateway-secret</c> file, or <c>Tenantry:GatewaySecret</c>), posts its per-tenant health there (<c>POST /v1/health/samples</c>),
/// forwards each request to its app's instances named in the table, and signs the tenant context with the gateways' private key
/// <c>Tenantry:Gateway:ContextSigningKeyFile</c> (the host's, so apps verify it with the one JWKS they were given), or, with
/// <c>Tenantry:Store</c> and the master key, with the key ring's key that every control-plane and gateway replica shares. With <c>Tenantry:Gateway:Redis</c> set, every replica shares each
/// tenant's rate-limit bucket and quota.
/// </summary>
internal static class GatewayReplica
{
    public const string Command = "gateway";

    /// <summary>An operator token (scope <c>tenantry:admin</c>) as the replica's JWT bearer scheme reads it.</summary>
    private const string OperatorPolicy = "operator";

    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddCommandLine(args, HostHelp.SwitchMappings);
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        builder.Logging.QuietStartFailures();
        builder.Services.AddOptions<ReplicaOptions>().BindConfiguration(GatewayOptions.Section).ValidateSettings(GatewayOptions.Section).ValidateOnStart();
        builder.Services.AddSingleton(sp => ActivatorUtilities.CreateInstance<ReplicaCredentials>(sp, ControlPlaneClient()));
        builder.Services.AddSingleton<IGatewayRouteSource>(sp => ActivatorUtilities.CreateInstance<HttpRouteSource>(sp, ControlPlaneClient()));
        builder.Services.AddSingleton<ITenantHealthSink>(sp => ActivatorUtilities.CreateInstance<HttpHealthSink>(sp, ControlPlaneClient()));
        // With Tenantry:Store, the tenant-context key is the key ring's, the one every replica signs with.
        var contextKey = ContextKeyRing.ForGatewayReplica(builder.Configuration);
        if (contextKey is not null)
        {
            builder.Services.AddSingleton(contextKey);
            // No key file is read then: the setting only has to be there for the gateway's options.
            builder.Configuration.AddInMemoryCollection([new("Tenantry:Gateway:ContextSigningKeyFile", "(key ring)")]);
        }

        builder.Services.AddTenantryGateway<HttpRouteSource>();
        // A key rotation reaches the replica without a restart.
        builder.Services.AddHostedService<ContextKeyReloader>();
        // Every path of the gateway's port is tenant traffic, so /metrics is served on an admin port of its own
        // (Tenantry:Gateway:AdminPort), if any; Tenantry:Telemetry:OtlpEndpoint works either way.
        var adminPort = builder.Configuration.GetValue<int?>("Tenantry:Gateway:AdminPort");
        builder.AddTenantryTelemetry("tenantry-gateway", scrapeEndpoint: adminPort is not null);
        builder.Services.AddAuthorizationBuilder().AddPolicy(OperatorPolicy, policy => policy
            .AddAuthenticationSchemes(Microsoft.AspNetCore.Authentication.JwtBearer.JwtBearerDefaults.AuthenticationScheme)
            .RequireAuthenticatedUser()
            .RequireAssertion(c => c.User.FindFirst("scope")?.Value.Split(' ').Contains(Tenantry.ControlPlane.Identity.IdentityApi.AdminScope) == true));
        var port = builder.Configuration.GetValue("Tenantry:Ports:Gateway", 5081);
        var listen = IPAddress.TryParse(builder.Configuration["Tenantry:ListenAddress"], out var address) ? address : IPAddress.Loopback;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(listen, port);
            if (adminPort is { } admin)
            {
                k.Listen(listen, admin);
            }
        });
        var app = builder.Build();
        if (adminPort is { } adminOnly)
        {
            // The admin port answers GET /metrics to an operator token (the control plane signs it) and nothing else.
            app.MapWhen(http => http.Connection.LocalPort == adminOnly, branch => branch
                .UseRouting()
                .UseAuthentication()
                .UseAuthorization()
                .UseEndpoints(e => e.MapTenantryMetrics(OperatorPolicy)));
        }

        app.UseTenantryGateway();
        if (contextKey is not null)
        {
            app.Lifetime.ApplicationStarted.Register(() => ContextKeyLog.FromRing(app.Logger, contextKey.KeyId));
        }

        return app;
    }

    private static HttpClient ControlPlaneClient() =>
        new(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = TimeSpan.FromSeconds(10) };
}

/// <summary>
/// The replica's credentials for the control plane's routing table (<c>Tenantry:Gateway:ClientId</c>, default
/// <c>gateway</c>, and <c>:ClientSecret</c>); it asks for <c>tenantry:routes</c> only, so a stolen replica
/// credential cannot onboard, change or offboard anything.
/// </summary>
internal sealed class ReplicaOptions
{
    [Required]
    public string ClientId { get; set; } = "gateway";

    [Required]
    [MinLength(16)]
    public string? ClientSecret { get; set; }
}

/// <summary>The routing table over HTTP: <c>GET /v1/routes</c> with the replica's token.</summary>
internal sealed class HttpRouteSource(HttpClient http, ReplicaCredentials credentials, IOptions<GatewayOptions> gateway) : IGatewayRouteSource, IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private IReadOnlyList<GatewayApp>? _apps;

    public async Task<IReadOnlyList<GatewayRoute>> LoadAsync(CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway.Value.Authority!, "v1/routes"));
        await credentials.AuthorizeAsync(request, cancellationToken);
        using var response = await http.SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            credentials.Forget();
        }

        response.EnsureSuccessStatusCode();
        var page = await response.Content.ReadFromJsonAsync<RoutesPage>(Json, cancellationToken)
            ?? throw new InvalidOperationException("The control plane sent an empty routing table.");
        _apps = page.Apps?.Select(ControlPlaneRouteSource.ToGatewayApp).ToList();
        return [.. page.Items.Select(ControlPlaneRouteSource.ToGatewayRoute)];
    }

    /// <summary>The apps of the table <see cref="LoadAsync"/> read last (the refresher reads both in turn).</summary>
    public Task<IReadOnlyList<GatewayApp>?> LoadAppsAsync(CancellationToken cancellationToken) => Task.FromResult(_apps);

    public void Dispose() => http.Dispose();

    private sealed record RoutesPage(List<TenantRouteEntry> Items, List<AppRouteEntry>? Apps);
}
