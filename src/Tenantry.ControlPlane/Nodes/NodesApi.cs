using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Nodes;

/// <summary>A node as <c>GET /v1/nodes</c> shows it; <see cref="Status"/> is <c>live</c>, <c>dead</c> or <c>leaving</c>.</summary>
public sealed record NodeView(string Name, string Address, int Capacity, int Instances, DateTimeOffset LastHeartbeat, string Status, bool Self);

public sealed record NodesResponse(IReadOnlyList<NodeView> Items);

/// <summary><c>GET /v1/nodes</c>: the compute nodes, their capacity, instances, last heartbeat and status.</summary>
public static class NodesApi
{
    public static RouteGroupBuilder MapNodesApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/nodes", List).WithTags("Nodes")
            .WithSummary("The compute nodes: name, address, capacity, instances placed on each, last heartbeat, status (live, dead, leaving).");
        return v1;
    }

    /// <summary>The nodes as the console and the API show them (a live node silent for DeadAfter shows dead).</summary>
    public static async Task<IReadOnlyList<NodeView>> ViewsAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(services);
        var db = services.GetRequiredService<IControlPlaneDatabase>();
        var self = services.GetRequiredService<ComputeNode>();
        var cutoff = services.GetRequiredService<TimeProvider>().GetUtcNow() - services.GetRequiredService<IOptions<NodeOptions>>().Value.DeadAfter;
        var load = services.GetService<INodeLoad>() is { } l ? await l.InstancesPerNodeAsync(cancellationToken) : new Dictionary<string, int>();
        var nodes = await db.ReadAsync(c => NodeStore.ListAsync(c, null), cancellationToken);
        return [.. nodes.Select(n => new NodeView(
            n.Name, n.Address, n.Capacity, load.GetValueOrDefault(n.Name), n.HeartbeatAt,
            n.Status == NodeStore.Dead || n.HeartbeatAt < cutoff ? NodeStore.Dead : n.Status, n.Name == self.Name))];
    }

    private static async Task<Ok<NodesResponse>> List(HttpContext http, CancellationToken cancellationToken) =>
        TypedResults.Ok(new NodesResponse(await ViewsAsync(http.RequestServices, cancellationToken)));

    /// <summary>This host as a compute node (<c>Tenantry:Node</c>), its heartbeat and the failover of dead nodes.</summary>
    public static IServiceCollection AddTenantryNodes(this IServiceCollection services)
    {
        services.AddOptions<NodeOptions>().BindConfiguration(NodeOptions.Section).ValidateSettings(NodeOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NodeOptions>, NodeOptionsValidator>());
        services.TryAddSingleton(sp => new ComputeNode(sp.GetRequiredService<IOptions<NodeOptions>>(), sp.GetRequiredService<IOptions<TenantryOptions>>(), sp.GetRequiredService<Identity.DataDirectory>()));
        services.AddSingleton<NodeHeartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<NodeHeartbeat>());
        return services;
    }
}
