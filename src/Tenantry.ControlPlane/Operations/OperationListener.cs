using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// On a PostgreSQL store, what other replicas commit about operations reaches this one at once: a finished
/// operation wakes this replica's long-polls of it (<c>GET /v1/operations/{id}?wait=</c>), and leases freed by a
/// replica stopping gracefully send their operations to this replica's worker.
/// </summary>
internal sealed class OperationListener(
    IControlPlaneDatabase db,
    IOptions<TenantryOptions> options,
    OperationSignals signals,
    IOperationQueue queue,
    ILogger<OperationListener> logger) : StoreChannelListener(Channel, logger)
{
    public const string Channel = "tenantry_operations";

    /// <summary>Payload prefix of an operation's end: <c>finished:</c> and its id.</summary>
    public const string FinishedPrefix = "finished:";

    /// <summary>Payload of leases freed by a replica that stopped gracefully.</summary>
    public const string Released = "released";

    private readonly Lazy<NpgsqlDataSource?> _source = new(() => db.Engine == "postgresql" && !string.IsNullOrWhiteSpace(options.Value.Store)
        ? NpgsqlDataSource.Create(options.Value.Store)
        : null);

    protected override NpgsqlDataSource? Source => _source.Value;

    protected override void OnNotification(string payload)
    {
        if (payload.StartsWith(FinishedPrefix, StringComparison.Ordinal) && Guid.TryParse(payload.AsSpan(FinishedPrefix.Length), out var id))
        {
            signals.Finished(id);
        }
        else if (payload == Released)
        {
            _ = EnqueueUnfinishedAsync();
        }
    }

    // Operations that ended or were freed while no one listened are found by the worker's poll.
    protected override void OnListening()
    {
    }

    public override void Dispose()
    {
        if (_source.IsValueCreated)
        {
            _source.Value?.Dispose();
        }

        base.Dispose();
    }

    private async Task EnqueueUnfinishedAsync()
    {
        try
        {
            foreach (var id in await db.ReadAsync(OperationStore.UnfinishedAsync))
            {
                queue.Enqueue(id); // the worker skips what it runs already and what another replica holds
            }
        }
#pragma warning disable CA1031 // The worker's poll finds them anyway.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }
}
