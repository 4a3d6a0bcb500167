using System.CommandLine;
using System.Globalization;

namespace Tenantry.Cli;

/// <summary><c>tenantry nodes</c>: the compute nodes, their capacity, instances, last heartbeat and status.</summary>
internal static partial class TenantryCli
{
    private static Command NodesCommand()
    {
        var nodes = new Command("nodes", "The compute nodes (control-plane hosts that run app instances): address, capacity, instances, last heartbeat, status.");
        nodes.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync("/v1/nodes", ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["NODE", "ADDRESS", "STATUS", "INSTANCES", "CAPACITY", "LAST HEARTBEAT"], result.GetProperty("items").EnumerateArray().Select(n =>
                (IReadOnlyList<string>)
                [
                    n.Str("name") + (n.GetProperty("self").GetBoolean() ? " (this)" : ""),
                    n.Str("address"),
                    n.Str("status"),
                    n.GetProperty("instances").GetInt64().ToString(CultureInfo.InvariantCulture),
                    n.GetProperty("capacity").GetInt64().ToString(CultureInfo.InvariantCulture),
                    n.GetProperty("lastHeartbeat").GetDateTimeOffset().ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                ]));
            return ExitCodes.Ok;
        }));
        return nodes;
    }
}
