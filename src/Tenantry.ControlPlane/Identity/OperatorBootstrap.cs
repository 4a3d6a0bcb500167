using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// Makes sure the bootstrap <c>operator</c> client exists with the configured secret, or with one
/// generated on first start and written 0600 into the data directory.
/// </summary>
internal sealed partial class OperatorBootstrap(
    DataDirectory dataDirectory,
    ClientStore clients,
    IOptions<TenantryOptions> options,
    IConfiguration configuration,
    ILogger<OperatorBootstrap> logger) : IHostedService
{
    public const string SecretFileName = "operator-secret";

    public string SecretSource { get; private set; } = "";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var secret = options.Value.OperatorSecret;
        SecretSource = "configuration (Tenantry:OperatorSecret)";
        if (string.IsNullOrEmpty(secret))
        {
            secret = configuration["TENANTRY_OPERATOR_SECRET"];
            SecretSource = "environment (TENANTRY_OPERATOR_SECRET)";
        }

        if (string.IsNullOrEmpty(secret))
        {
            var file = Path.Combine(dataDirectory.Root, SecretFileName);
            SecretSource = file;
            if (File.Exists(file))
            {
                secret = (await File.ReadAllTextAsync(file, cancellationToken)).Trim();
            }
            else
            {
                secret = ClientStore.NewSecret();
                DataDirectory.WriteSecret(file, secret);
                Log.Generated(logger, file);
            }
        }
        else if (secret.Length < 16)
        {
            throw new InvalidOperationException("TENANTRY_OPERATOR_SECRET must be at least 16 characters.");
        }

        await clients.UpsertAsync(IdentityApi.OperatorClientId, secret, "Bootstrap operator", null, [IdentityApi.AdminScope], cancellationToken);
        Log.Ready(logger, IdentityApi.OperatorClientId, SecretSource);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Generated a secret for the operator client and wrote it (0600) to {Path}")]
        public static partial void Generated(ILogger logger, string path);

        [LoggerMessage(2, LogLevel.Information, "Operator client '{ClientId}' ready; its secret comes from {Source}")]
        public static partial void Ready(ILogger logger, string clientId, string source);
    }
}
