using System.Data.Common;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Identity;

namespace Tenantry.ControlPlane.Nodes;

/// <summary>
/// What another feature hands over when a node dies or leaves, and keeps true on each heartbeat: app instances
/// are re-placed (and started by the nodes they land on), operation leases are freed for the survivors.
/// </summary>
public interface INodeHandover
{
    /// <summary>
    /// Moves what <paramref name="node"/> held to the <paramref name="live"/> nodes, in the transaction that declared it
    /// dead, so the move and the declaration commit together or not at all.
    /// </summary>
    Task TakeOverAsync(DbConnection connection, DbTransaction transaction, NodeRecord node, IReadOnlyList<NodeRecord> live);

    /// <summary>After each heartbeat and each takeover: this node runs what is placed on it, and nothing placed elsewhere.</summary>
    Task SettleAsync(CancellationToken cancellationToken);
}

/// <summary>How many app instances each node holds, for the nodes list.</summary>
public interface INodeLoad
{
    Task<IReadOnlyDictionary<string, int>> InstancesPerNodeAsync(CancellationToken cancellationToken);
}

/// <summary>
/// This host as a compute node: its stable name (<c>Tenantry:Node:Name</c>, else <c>Tenantry:NodeName</c>, else the
/// machine name with a suffix generated once and kept in the data dir), the address the gateway reaches its instances
/// at, its capacity, and the epoch it registered with (see <see cref="NodeRecord.Epoch"/>).
/// </summary>
internal sealed class ComputeNode
{
    /// <summary>The data-dir file that keeps a generated name.</summary>
    public const string FileName = "node-id";

    private readonly TaskCompletionSource _registered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _epoch;

    public ComputeNode(IOptions<NodeOptions> options, IOptions<TenantryOptions> tenantry, DataDirectory dataDirectory)
    {
        var o = options.Value;
        Address = o.Address;
        Capacity = o.Capacity;
        if (o.Name is { Length: > 0 } configured)
        {
            Name = configured.Trim();
            return;
        }

        if (tenantry.Value.NodeName is { Length: > 0 } legacy && !string.IsNullOrWhiteSpace(legacy))
        {
            Name = legacy.Trim();
            return;
        }

        var path = Path.Combine(dataDirectory.Root, FileName);
        var stored = File.Exists(path) ? File.ReadAllText(path).Trim() : "";
        if (stored.Length == 0)
        {
            // The data dir is locked to this process, so no other start writes it at the same time.
            stored = $"{Environment.MachineName}-{Guid.NewGuid():N}";
            DataDirectory.WriteSecret(path, stored);
        }

        Name = stored;
    }

    public string Name { get; }

    public string Address { get; }

    public int Capacity { get; }

    /// <summary>The epoch of this node's registration; 0 before it registered.</summary>
    public long Epoch => Interlocked.Read(ref _epoch);

    /// <summary>Completes once the node is registered in the store (placement needs it).</summary>
    public Task Registered => _registered.Task;

    internal void SetEpoch(long epoch)
    {
        Interlocked.Exchange(ref _epoch, epoch);
        _registered.TrySetResult();
    }

    /// <summary>Nodes that take instances now: live, heard from since <paramref name="cutoff"/>.</summary>
    public static async Task<IReadOnlyList<NodeRecord>> LiveAsync(DbConnection connection, DbTransaction? transaction, DateTimeOffset cutoff) =>
        [.. (await NodeStore.ListAsync(connection, transaction)).Where(n => n.Status == NodeStore.Live && n.HeartbeatAt >= cutoff)];
}
