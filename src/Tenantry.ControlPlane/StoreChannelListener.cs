using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane;

/// <summary>
/// On a PostgreSQL store: LISTENs on one channel and hands each notification (committed by any replica) to
/// <see cref="OnNotification"/>, reconnecting after failures. What a notification wakes also polls, more slowly,
/// so a lost connection delays wake-ups and loses nothing.
/// </summary>
internal abstract partial class StoreChannelListener(string channel, ILogger logger) : BackgroundService
{
    /// <summary>The store's connections; null on SQLite, where one process owns the store and wakes itself.</summary>
    protected abstract NpgsqlDataSource? Source { get; }

    /// <summary>A notification's payload, on the connection's thread: keep it short.</summary>
    protected abstract void OnNotification(string payload);

    /// <summary>Once listening (again): what changed while no one listened was not notified.</summary>
    protected abstract void OnListening();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (Source is not { } source)
        {
            return;
        }

        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await source.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                await connection.ExecuteAsync($"LISTEN {channel}", null);
                failures = 0;
                OnListening();
                while (!stoppingToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                failures++;
                Log.ListenFailed(logger, channel, ex);
                await Task.Delay(LoopBackOff.After(TimeSpan.FromSeconds(1), failures), stoppingToken);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Listening on {Channel} failed; waiters poll until it is back.")]
        public static partial void ListenFailed(ILogger logger, string channel, Exception exception);
    }
}
