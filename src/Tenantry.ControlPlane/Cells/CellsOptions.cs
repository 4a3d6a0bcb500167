using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Cells;

/// <summary>
/// <c>Tenantry:Cells:N</c>: placement groups. A cell names a region, the PostgreSQL servers its
/// bridge and silo tenants' databases go to (none: the embedded files, or every registered
/// server) and how many tenants it takes. With no cell configured, one implicit cell serves every
/// region.
/// </summary>
public sealed class CellsOptions
{
    public const string Section = "Tenantry:Cells";

    public List<CellOptions> Cells { get; set; } = [];

    /// <summary>
    /// Reads the list at <c>Tenantry:Cells</c> (its entries sit at the section's root:
    /// <c>Tenantry:Cells:0:Name</c>). Entry by entry, because the binder skips a list entry it
    /// cannot convert, where a bad value must stop start-up naming its key.
    /// </summary>
    internal static void Bind(CellsOptions options, IConfiguration configuration) =>
        options.Cells = [.. configuration.GetSection(Section).GetChildren()
            .OrderBy(c => int.TryParse(c.Key, out var i) ? i : int.MaxValue)
            .ThenBy(c => c.Key, StringComparer.Ordinal)
            .Select(c => c.Get<CellOptions>() ?? new CellOptions())];
}

/// <summary>One cell.</summary>
public sealed class CellOptions
{
    /// <summary>How placement, the API and the console name it: <c>eu-1</c>.</summary>
    public string Name { get; set; } = "";

    /// <summary>The region it serves: a tenant whose <c>config.region</c> is this one is placed only in a cell of it.</summary>
    public string Region { get; set; } = "";

    /// <summary>Names of servers of <c>Tenantry:Postgres:Servers</c> whose databases it uses; none: every registered server (or the embedded files).</summary>
    public List<string> PostgresServers { get; set; } = [];

    /// <summary>Tenants it holds at most (offboarded tenants do not count).</summary>
    public int Capacity { get; set; } = 10_000;
}

internal sealed class CellsOptionsValidator : IValidateOptions<CellsOptions>
{
    public ValidateOptionsResult Validate(string? name, CellsOptions options)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < options.Cells.Count; i++)
        {
            var cell = options.Cells[i];
            var key = $"{CellsOptions.Section}:{i}";
            if (!CellRules.IsName(cell.Name))
            {
                return ValidateOptionsResult.Fail($"{key}:Name: '{cell.Name}' is not a cell name (1-40 of a-z, 0-9 and '-', starting with a letter or digit).");
            }

            if (!names.Add(cell.Name))
            {
                return ValidateOptionsResult.Fail($"{key}:Name: the cell '{cell.Name}' is configured twice.");
            }

            if (!CellRules.IsRegion(cell.Region))
            {
                return ValidateOptionsResult.Fail($"{key}:Region: '{cell.Region}' is not a region name (1-40 of a-z, 0-9 and '-', starting with a letter or digit).");
            }

            if (cell.Capacity is < 1 or > 10_000_000)
            {
                return ValidateOptionsResult.Fail($"{key}:Capacity: {cell.Capacity} is not between 1 and 10000000.");
            }
        }

        return ValidateOptionsResult.Success;
    }
}

internal static partial class CellRules
{
    public static bool IsName(string? value) => value is not null && Name().IsMatch(value);

    public static bool IsRegion(string? value) => value is not null && Name().IsMatch(value);

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,39}$", RegexOptions.CultureInvariant)]
    private static partial Regex Name();
}
