using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Nodes;

/// <summary>
/// Registers this host as a node on start, then every <see cref="NodeOptions.HeartbeatInterval"/>: records its
/// heartbeat (fenced by its epoch), takes over any node silent for <see cref="NodeOptions.DeadAfter"/> or leaving
/// (under the store's write lock, so exactly one survivor does), and settles what runs here. A node whose heartbeat
/// finds its epoch moved was declared dead: it registers again and its settle removes the copies now placed elsewhere.
/// On a graceful stop, with another node live, it marks itself leaving and waits (bounded) for a survivor to take over.
/// </summary>
internal sealed partial class NodeHeartbeat(
    ComputeNode node,
    IControlPlaneDatabase db,
    IEnumerable<INodeHandover> handovers,
    IOptions<NodeOptions> options,
    TimeProvider time,
    ILogger<NodeHeartbeat> logger) : IHostedService, IDisposable
{
    /// <summary>How long a leaving node waits for a survivor to take its instances over.</summary>
    private static readonly TimeSpan LeaveWait = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;

    /// <summary>Since when this node's heartbeats have all succeeded (null after a failed one).</summary>
    private DateTimeOffset? _beatingSince;
    private bool _disposed;
    private int _disposedFlag;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await RegisterAsync(cancellationToken);
        _loop = Task.Run(() => LoopAsync(_stopping.Token), CancellationToken.None);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // A host disposed before it was stopped (WebApplicationFactory.DisposeAsync does so) has nothing left to hand over.
        if (Volatile.Read(ref _disposed))
        {
            return;
        }

        await _stopping.CancelAsync();
        if (_loop is not null)
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        try
        {
            await LeaveAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.LeaveFailed(logger, node.Name, ex.Message);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposedFlag, 1) == 1)
        {
            return;
        }

        Volatile.Write(ref _disposed, true);
        // Disposed without a stop: the loop ends here rather than beating for a host that is gone.
        _stopping.Cancel();
        _stopping.Dispose();
    }

    private async Task RegisterAsync(CancellationToken cancellationToken)
    {
        var epoch = await db.WriteAsync((c, tx) => NodeStore.RegisterAsync(c, tx, node.Name, node.Address, node.Capacity, time.GetUtcNow()), cancellationToken);
        node.SetEpoch(epoch);
        Log.Registered(logger, node.Name, node.Address, node.Capacity, epoch);
    }

    private async Task LoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(options.Value.HeartbeatInterval, time);
        do
        {
            try
            {
                await BeatAsync(stopping);
                await TakeOverDeadAsync(stopping);
                foreach (var handover in handovers)
                {
                    await handover.SettleAsync(stopping);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _beatingSince = null;
                Log.BeatFailed(logger, node.Name, ex.Message);
            }
        }
        while (await WaitAsync(timer, stopping));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stopping)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stopping);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task BeatAsync(CancellationToken stopping)
    {
        var now = time.GetUtcNow();
        var epoch = node.Epoch;
        // One row's update, outside the store-wide write lock on PostgreSQL: a busy store (many writes queued behind
        // the lock) must not make a live node look dead. The row lock still orders it against a claim of this node.
        var alive = db.Engine == "postgresql"
            ? await db.ReadAsync(c => NodeStore.BeatAsync(c, null, node.Name, epoch, now), stopping)
            : await db.WriteAsync((c, tx) => NodeStore.BeatAsync(c, tx, node.Name, epoch, now), stopping);
        if (!alive)
        {
            Log.Fenced(logger, node.Name, epoch);
            await RegisterAsync(stopping);
            _beatingSince = null;
        }

        _beatingSince ??= now;
    }

    private async Task TakeOverDeadAsync(CancellationToken stopping)
    {
        var cutoff = time.GetUtcNow() - options.Value.DeadAfter;
        // Only a node that has itself reached the store for a whole DeadAfter judges others silent: after an outage of the
        // store (or a pause of this host) every node's heartbeat is old, and none may be declared dead before it had a chance
        // to beat. A leaving node asked to be taken over: any live node does it at once.
        var judges = _beatingSince is { } since && since <= cutoff;
        var nodes = await db.ReadAsync(c => NodeStore.ListAsync(c, null), stopping);
        var gone = nodes.Where(n => n.Name != node.Name
            && (n.Status == NodeStore.Leaving || (judges && n.Status == NodeStore.Live && n.HeartbeatAt < cutoff))).ToList();
        var tookOver = false;
        foreach (var dead in gone)
        {
            var claimed = await db.WriteAsync(
                async (c, tx) =>
                {
                    if (!await NodeStore.ClaimAsync(c, tx, dead.Name, dead.Epoch, cutoff))
                    {
                        return false;
                    }

                    var live = (await ComputeNode.LiveAsync(c, tx, cutoff)).Where(n => n.Name != dead.Name).ToList();
                    foreach (var handover in handovers)
                    {
                        await handover.TakeOverAsync(c, tx, dead, live);
                    }

                    return true;
                },
                stopping);
            if (claimed)
            {
                tookOver = true;
                Log.TookOver(logger, node.Name, dead.Name, dead.Status == NodeStore.Leaving ? "it is leaving" : $"no heartbeat since {dead.HeartbeatAt:O}");
            }
        }

        if (tookOver)
        {
            foreach (var handover in handovers)
            {
                await handover.SettleAsync(stopping);
            }
        }
    }

    private async Task LeaveAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow() - options.Value.DeadAfter;
        var epoch = node.Epoch;
        var left = await db.WriteAsync(
            async (c, tx) => (await ComputeNode.LiveAsync(c, tx, cutoff)).Any(n => n.Name != node.Name) && await NodeStore.LeaveAsync(c, tx, node.Name, epoch),
            cancellationToken);
        if (!left)
        {
            // No survivor: the instances stay placed here and come back with this node's next start.
            return;
        }

        Log.Leaving(logger, node.Name);
        var deadline = time.GetUtcNow() + LeaveWait;
        while (time.GetUtcNow() < deadline)
        {
            var mine = (await db.ReadAsync(c => NodeStore.ListAsync(c, null), cancellationToken)).FirstOrDefault(n => n.Name == node.Name);
            if (mine is null || mine.Status == NodeStore.Dead)
            {
                Log.HandedOver(logger, node.Name);
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), time, cancellationToken);
        }

        Log.NotHandedOver(logger, node.Name, LeaveWait);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Node {Node} registered: address {Address}, capacity {Capacity}, epoch {Epoch}")]
        public static partial void Registered(ILogger logger, string node, string address, int capacity, long epoch);

        [LoggerMessage(2, LogLevel.Warning, "Node {Node} was declared dead (epoch {Epoch} moved on): its instances run elsewhere now; registering again and removing the local copies")]
        public static partial void Fenced(ILogger logger, string node, long epoch);

        [LoggerMessage(3, LogLevel.Warning, "Node {Node} took over node {Dead}: {Reason}")]
        public static partial void TookOver(ILogger logger, string node, string dead, string reason);

        [LoggerMessage(4, LogLevel.Warning, "Heartbeat of node {Node} failed: {Error}")]
        public static partial void BeatFailed(ILogger logger, string node, string error);

        [LoggerMessage(5, LogLevel.Information, "Node {Node} is leaving; waiting for a live node to take its instances over")]
        public static partial void Leaving(ILogger logger, string node);

        [LoggerMessage(6, LogLevel.Information, "Node {Node} handed its instances over")]
        public static partial void HandedOver(ILogger logger, string node);

        [LoggerMessage(7, LogLevel.Warning, "Node {Node}: no live node took its instances over within {Wait}; they move when it is declared dead")]
        public static partial void NotHandedOver(ILogger logger, string node, TimeSpan wait);

        [LoggerMessage(8, LogLevel.Warning, "Node {Node} could not mark itself leaving: {Error}")]
        public static partial void LeaveFailed(ILogger logger, string node, string error);
    }
}
