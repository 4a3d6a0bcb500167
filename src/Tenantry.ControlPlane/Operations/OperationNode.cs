using Tenantry.ControlPlane.Nodes;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// This host's stable name among the replicas that share a store: its compute node's name (<c>Tenantry:Node:Name</c>,
/// else <c>Tenantry:NodeName</c>, else a name generated once and kept in the data dir). The leases it takes carry it,
/// so a host that comes back after a crash knows the leases it held and takes them back at once, and a node declared
/// dead has its leases freed by the survivor that takes it over (<see cref="OperationsNodeHandover"/>).
/// </summary>
internal sealed class OperationNode(ComputeNode node)
{
    public const string FileName = ComputeNode.FileName;

    public string Name { get; } = node.Name;
}

/// <summary>
/// A dead node's operation leases end at once, in the takeover's transaction: a survivor resumes its operations without
/// waiting for the leases to run out. A leaving node keeps its leases: its worker lets its running steps end, then frees them.
/// </summary>
internal sealed class OperationsNodeHandover : INodeHandover
{
    public async Task TakeOverAsync(System.Data.Common.DbConnection connection, System.Data.Common.DbTransaction transaction, NodeRecord node, IReadOnlyList<NodeRecord> live)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (node.Status != NodeRecord.Leaving)
        {
            await OperationStore.ReleaseOwnedAsync(connection, transaction, node.Name);
        }
    }

    public Task SettleAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
