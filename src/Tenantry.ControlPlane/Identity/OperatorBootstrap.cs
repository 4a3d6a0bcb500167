using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Keys;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// Makes sure the bootstrap clients exist: <c>operator</c> (<c>tenantry:admin</c>) and <c>gateway</c>
/// (<c>tenantry:routes</c>, for gateway replicas), each with its configured secret, or one generated
/// on first start and written 0600 into the data directory (<c>operator-secret</c>, <c>gateway-secret</c>).
/// On a shared store a generated secret lives in the key ring (sealed with the master key), so replicas do not
/// replace each other's: each writes the ring's value into its own data directory's file.
/// </summary>
internal sealed partial class OperatorBootstrap(
    DataDirectory dataDirectory,
    ClientStore clients,
    IOptions<TenantryOptions> options,
    IConfiguration configuration,
    IKeyRingSecrets ring,
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
            if (ring.Shared)
            {
                // The first replica's secret (its file's, if it had one from before) is every replica's.
                var existing = File.Exists(file) ? (await File.ReadAllTextAsync(file, cancellationToken)).Trim() : null;
                secret = await ring.GetOrCreateAsync(fileName, () => existing is { Length: >= 16 } ? existing : ClientStore.NewSecret(), cancellationToken);
                source = $"the key ring in Tenantry:Store (copied to {file})";
                if (existing != secret)
                {
                    DataDirectory.WriteSecret(file, secret);
                }
            }
            else if (File.Exists(file))
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
