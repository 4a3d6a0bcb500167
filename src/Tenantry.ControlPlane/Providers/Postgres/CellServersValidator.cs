using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Cells;

namespace Tenantry.ControlPlane.Providers.Postgres;

/// <summary>Every server a cell names (<c>Tenantry:Cells:N:PostgresServers:M</c>) is one of <c>Tenantry:Postgres:Servers</c>.</summary>
internal sealed class CellServersValidator(IOptions<TenantryOptions> tenantry) : IValidateOptions<CellsOptions>
{
    public ValidateOptionsResult Validate(string? name, CellsOptions options)
    {
        var servers = tenantry.Value.Postgres.Servers.Select(PostgresServers.NameOf).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < options.Cells.Count; i++)
        {
            var named = options.Cells[i].PostgresServers;
            for (var j = 0; j < named.Count; j++)
            {
                if (!servers.Contains(named[j]))
                {
                    return ValidateOptionsResult.Fail($"{CellsOptions.Section}:{i}:PostgresServers:{j}: '{named[j]}' is not a server of Tenantry:Postgres:Servers (by its Name, or host:port).");
                }
            }
        }

        return ValidateOptionsResult.Success;
    }
}
