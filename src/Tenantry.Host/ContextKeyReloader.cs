using Microsoft.Extensions.Options;
using Npgsql;
using Tenantry.ControlPlane;
using Tenantry.Gateway;

namespace Tenantry.Host;

/// <summary>
/// A gateway replica's side of a key rotation: it signs with the ring's new tenant-context key without a restart.
/// With <c>Tenantry:Store</c> it LISTENs for the control plane's notification of a rotation and reads the ring again
/// every <c>Tenantry:Keys:ReloadEvery</c> in case one was lost; on the embedded store it reads the key file again as often.
/// </summary>
internal sealed partial class ContextKeyReloader(
    TenantContextSigningKey key,
    IConfiguration configuration,
    IOptions<GatewayOptions> gateway,
    ILogger<ContextKeyReloader> logger) : BackgroundService
{
    /// <summary>The channel the control plane notifies a rotation on (the key ring's).</summary>
    private const string Channel = "tenantry_keys";

    private TimeSpan Every => configuration.GetValue("Tenantry:Keys:ReloadEvery", TimeSpan.FromSeconds(30)) is { } every && every > TimeSpan.Zero ? every : TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var store = configuration["Tenantry:Store"];
        try
        {
            if (string.IsNullOrWhiteSpace(store))
            {
                await FollowFileAsync(stoppingToken);
            }
            else
            {
                await FollowStoreAsync(store, ContextKeyRing.MasterKeyOf(configuration), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task FollowStoreAsync(string store, string master, CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(store);
                await connection.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                failures = 0;
                while (!stoppingToken.IsCancellationRequested)
                {
                    // A rotation notified or not, the ring is read again: what changed while no one listened is caught up.
                    Use(await ContextKeyRing.ReadAsync(store, master, stoppingToken));
                    await connection.WaitAsync(Every, stoppingToken);
                }
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException or TenantryStartupException)
            {
                failures++;
                Log.ReloadFailed(logger, ex);
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(30, failures * 2)), stoppingToken);
            }
        }
    }

    private async Task FollowFileAsync(CancellationToken stoppingToken)
    {
        var file = gateway.Value.ContextSigningKeyFile;
        if (string.IsNullOrEmpty(file))
        {
            return;
        }

        using var timer = new PeriodicTimer(Every);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                Use(File.Exists(file) ? await File.ReadAllTextAsync(file, stoppingToken) : null);
            }
            catch (Exception ex) when (ex is IOException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                Log.ReloadFailed(logger, ex);
            }
        }
    }

    private void Use(string? pem)
    {
        if (pem is null)
        {
            return;
        }

        var before = key.KeyId;
        key.Use(pem, [pem]);
        if (key.KeyId != before)
        {
            Log.Rotated(logger, key.KeyId, before);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Tenant-context signing key rotated: now {KeyId} (was {PreviousKeyId})")]
        public static partial void Rotated(ILogger logger, string keyId, string previousKeyId);

        [LoggerMessage(2, LogLevel.Warning, "Reading the tenant-context key again failed; the key in use stays until the next try.")]
        public static partial void ReloadFailed(ILogger logger, Exception exception);
    }
}
