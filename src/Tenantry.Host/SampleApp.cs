using Microsoft.Extensions.Options;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Apps;

namespace Tenantry.Host;

/// <summary>
/// Registers the bundled sample, Orders.Api (built next to the host in <c>samples/orders/</c>), as the
/// app <c>orders</c> at route prefix <c>/</c> when no app is registered yet, through the same registry
/// as any app, so the platform serves something from its first start. Off with
/// <c>Tenantry:Apps:RegisterSample=false</c>.
/// </summary>
internal sealed partial class SampleApp(IConfiguration configuration, IOptions<TenantryOptions> options, AppRegistry registry, ILogger<SampleApp> logger) : IHostedService
{
    public const string Name = "orders";
    public const string Version = "1.0.0";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!configuration.GetValue("Tenantry:Apps:RegisterSample", true) || (await registry.ListAsync(cancellationToken)).Count > 0)
        {
            return;
        }

        var folder = Path.Combine(AppContext.BaseDirectory, "samples", "orders");
        var dll = Path.Combine(folder, "Orders.Api.dll");
        if (!File.Exists(dll))
        {
            Log.Missing(logger, dll);
            return;
        }

        var (_, appError) = await registry.RegisterAsync(new CreateAppRequest(Name, "/", "/healthz", new SharedRequest(1)), "platform", cancellationToken);
        var migrations = Path.Combine(folder, "migrations");
        var (_, releaseError) = await registry.CreateReleaseAsync(
            Name,
            new CreateReleaseRequest(
                Version,
                // The sample keeps attachments in the tenants' folders of the data directory.
                new ProcessRequest(DotnetCommand(), [dll, "--Tenantry:App:DataDir=" + options.Value.DataPath], folder, null),
                null,
                null,
                Directory.Exists(migrations) ? migrations : null),
            "platform",
            cancellationToken);
        if (appError is not null || releaseError is not null)
        {
            Log.Failed(logger, (appError ?? releaseError)!.Detail);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The dotnet muxer: the one running this host, or <c>dotnet</c> on the PATH.</summary>
    private static string DotnetCommand() =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The sample app is not next to the host ({Path}); no default app was registered")]
        public static partial void Missing(ILogger logger, string path);

        [LoggerMessage(2, LogLevel.Error, "Could not register the sample app: {Detail}")]
        public static partial void Failed(ILogger logger, string detail);
    }
}
