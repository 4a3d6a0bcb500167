using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Nodes;

/// <summary>This host as a compute node, under <c>Tenantry:Node</c>.</summary>
public sealed class NodeOptions
{
    public const string Section = "Tenantry:Node";

    /// <summary>
    /// The node's name among the hosts sharing a store; empty: <c>Tenantry:NodeName</c>, else the machine name with a
    /// suffix generated once per data dir (<c>node-id</c>). It also owns the leases of the operations the host runs.
    /// </summary>
    [MaxLength(100)]
    public string? Name { get; set; }

    /// <summary>The address the gateway reaches this node's app instances at (a host name or IP, no port).</summary>
    [Required]
    [RegularExpression(@"^[A-Za-z0-9.\-:\[\]]{1,253}$", ErrorMessage = "Tenantry:Node:Address is a host name or an IP address, without scheme or port.")]
    public string Address { get; set; } = "127.0.0.1";

    /// <summary>How many app instances (shared and dedicated) this node runs at most.</summary>
    [Range(1, 100_000)]
    public int Capacity { get; set; } = 1000;

    /// <summary>How often the node records that it is alive.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A node whose last heartbeat is older than this is dead: a surviving node takes its instances and operations over.</summary>
    [Range(typeof(TimeSpan), "00:00:00.300", "00:10:00")]
    public TimeSpan DeadAfter { get; set; } = TimeSpan.FromSeconds(2);
}

internal sealed class NodeOptionsValidator : IValidateOptions<NodeOptions>
{
    public ValidateOptionsResult Validate(string? name, NodeOptions options)
    {
        if (options.DeadAfter < options.HeartbeatInterval * 2)
        {
            return ValidateOptionsResult.Fail(
                $"Tenantry:Node:DeadAfter: {options.DeadAfter:c} must be at least twice Tenantry:Node:HeartbeatInterval ({options.HeartbeatInterval:c}), so one late heartbeat does not declare a node dead.");
        }

        if (options.Name is { Length: > 0 } node && (string.IsNullOrWhiteSpace(node) || node.Any(char.IsControl)))
        {
            return ValidateOptionsResult.Fail("Tenantry:Node:Name: a node name is printable text.");
        }

        return ValidateOptionsResult.Success;
    }
}
