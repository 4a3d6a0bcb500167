using System.CommandLine;
using System.Globalization;

namespace Tenantry.Cli;

/// <summary><c>tenantry cells</c>: the placement groups, their regions, capacities and how full they are.</summary>
internal static partial class TenantryCli
{
    private static Command CellsCommand()
    {
        var cells = new Command("cells", "The cells tenants are placed in: region, capacity, tenants held now, PostgreSQL servers.");
        cells.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync("/v1/cells", ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["CELL", "REGION", "TENANTS", "CAPACITY", "USED", "POSTGRESQL SERVERS"], result.GetProperty("items").EnumerateArray().Select(c =>
            {
                var capacity = c.GetProperty("capacity").GetInt64();
                var tenants = c.GetProperty("tenants").GetInt64();
                var servers = c.GetProperty("postgresServers").EnumerateArray().Select(s => s.GetString()!).ToList();
                return (IReadOnlyList<string>)
                [
                    c.Str("name"),
                    c.Str("region") is { Length: > 0 } r ? r : "(any)",
                    tenants.ToString(CultureInfo.InvariantCulture),
                    capacity >= int.MaxValue ? "-" : capacity.ToString(CultureInfo.InvariantCulture),
                    capacity is <= 0 or >= int.MaxValue ? "-" : (100.0 * tenants / capacity).ToString("0.#", CultureInfo.InvariantCulture) + " %",
                    servers.Count == 0 ? "(all)" : string.Join(", ", servers),
                ];
            }));
            return ExitCodes.Ok;
        }));
        return cells;
    }
}
