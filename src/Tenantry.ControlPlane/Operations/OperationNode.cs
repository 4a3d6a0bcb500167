using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Identity;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// This host's stable name among the replicas that share a store: <c>Tenantry:NodeName</c>, or a
/// name generated once and kept in the data dir. The leases it takes carry it, so a host that comes
/// back after a crash knows the leases it held and takes them back at once.
/// </summary>
internal sealed class OperationNode
{
    public const string FileName = "node-id";

    public OperationNode(IOptions<TenantryOptions> options, DataDirectory dataDirectory)
    {
        if (options.Value.NodeName is { Length: > 0 } configured)
        {
            Name = configured.Trim();
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
}
