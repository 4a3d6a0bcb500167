using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// Makes sure the bootstrap clients exist: <c>operator</c> (<c>tenantry:admin</c>) and <c>gateway</c>
/// (<c>tenantry:routes</c>, for gateway replicas), each with its configured secret, or one generated
/// on first start and written 0600 into the data directory (<c>operator-secret</c>, <c>gateway-secret</c>).
/// </summary>
internal sealed partial class OperatorBootstrap(
    DataDirectory dataDirectory,
    ClientStore clients,
    IOptions<TenantryOptions> options,
    IConfiguration configuration,
    ILogger<OperatorBootstrap> logger) : IHostedService
{
    public const string SecretFileName = "operator-secret";
    public const string GatewaySecretFileName = "gateway-secret";

    public string SecretSource { get; private set; } = "";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var (secret, source) = await SecretAsync(options.Value.OperatorSecret, "Tenantry:OperatorSecret", "TENANTRY_OPERATOR_SECRET", SecretFileName, cancellationToken);
        SecretSource = source;
        await clients.UpsertAsync(IdentityApi.OperatorClientId, secret, "Bootstrap operator", null, [IdentityApi.AdminScope], cancellationToken);
        Log.Ready(logger, IdentityApi.OperatorClientId, SecretSource);

        // Gateway replicas read the routing table with a client that can do nothing else.
        var (gatewaySecret, gatewaySource) = await SecretAsync(
            configuration["Tenantry:GatewaySecret"], "Tenantry:GatewaySecret", "TENANTRY_GATEWAY_SECRET", GatewaySecretFileName, cancellationToken);
        await clients.UpsertAsync(IdentityApi.GatewayClientId, gatewaySecret, "Gateway replicas (routing table only)", null, [IdentityApi.RoutesScope], cancellationToken);
        Log.Ready(logger, IdentityApi.GatewayClientId, gatewaySource);
    }

    /// <summary>A bootstrap client's secret: configured, from the environment, or from (or generated into) a 0600 file in the data directory.</summary>
    private async Task<(string Secret, string Source)> SecretAsync(string? configured, string setting, string variable, string fileName, CancellationToken cancellationToken)
    {
        var secret = configured;
        var source = $"configuration ({setting})";
        if (string.IsNullOrEmpty(secret))
        {
            secret = configuration[variable];
            source = $"environment ({variable})";
        }

        if (string.IsNullOrEmpty(secret))
        {
            var file = Path.Combine(dataDirectory.Root, fileName);
            source = file;
            if (File.Exists(file))
            {
                secret = (await File.ReadAllTextAsync(file, cancellationToken)).Trim();
            }
            else
            {
                secret = ClientStore.NewSecret();
                DataDirectory.WriteSecret(file, secret);
                Log.Generated(logger, fileName, file);
            }
        }
        else if (secret.Length < 16)
        {
            throw new InvalidOperationException($"{variable} must be at least 16 characters.");
        }

        return (secret, source);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Generated a secret ({Name}) and wrote it (0600) to {Path}")]
        public static partial void Generated(ILogger logger, string name, string path);

        [LoggerMessage(2, LogLevel.Information, "Bootstrap client '{ClientId}' ready; its secret comes from {Source}")]
        public static partial void Ready(ILogger logger, string clientId, string source);
    }
}
