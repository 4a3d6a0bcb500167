using System.ComponentModel.DataAnnotations;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Tenantry.Billing.Costs;

/// <summary>Settings under <c>Tenantry:Costs</c>: the price book the daily costing run turns usage and dedicated resources into cost lines with.</summary>
public sealed class CostOptions
{
    public const string Section = "Tenantry:Costs";

    /// <summary>The currency of the price book's prices and of the cost lines it writes (ISO 4217).</summary>
    [RegularExpression("^[A-Z]{3}$")]
    public string Currency { get; set; } = "USD";

    /// <summary>How often the costing run looks for finished days not costed yet.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan RunInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How many finished days the costing run catches up at most when it was not running (a new host starts with yesterday).</summary>
    [Range(1, 366)]
    public int CatchUpDays { get; set; } = 31;

    public PriceBook PriceBook { get; set; } = new();
}

/// <summary>
/// Unit prices of what a tenant costs to run; zero (the default) leaves the item out. Each price
/// matches a built-in meter (<c>api_calls</c>, <c>storage_bytes</c>, <c>job_seconds</c>) or a dedicated
/// resource read from the tenant's resources (silo database, bridge schema, dedicated instance).
/// </summary>
public sealed class PriceBook
{
    private const string Max = "1000000000";

    /// <summary>Per million calls of the <c>api_calls</c> meter.</summary>
    [Range(typeof(decimal), "0", Max)]
    public decimal PerMillionRequests { get; set; }

    /// <summary>Per GB (10^9 bytes) of the day's largest <c>storage_bytes</c> sample, per month (a day costs its share of the month).</summary>
    [Range(typeof(decimal), "0", Max)]
    public decimal GbMonthStored { get; set; }

    /// <summary>Per hour of background jobs (<c>job_seconds</c>).</summary>
    [Range(typeof(decimal), "0", Max)]
    public decimal PerJobHour { get; set; }

    /// <summary>Per month a silo tenant holds its own database.</summary>
    [Range(typeof(decimal), "0", Max)]
    public decimal DatabaseMonth { get; set; }

    /// <summary>Per month a bridge tenant holds its own schema.</summary>
    [Range(typeof(decimal), "0", Max)]
    public decimal SchemaMonth { get; set; }

    /// <summary>Per hour a tenant holds a dedicated app instance.</summary>
    [Range(typeof(decimal), "0", Max)]
    public decimal DedicatedInstanceHour { get; set; }

    /// <summary>The names of the prices, as configuration keys and cost-line items.</summary>
    public static IReadOnlyList<string> Items { get; } =
        [.. typeof(PriceBook).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.PropertyType == typeof(decimal)).Select(p => p.Name)];

    public bool IsEmpty => PerMillionRequests == 0 && GbMonthStored == 0 && PerJobHour == 0 && DatabaseMonth == 0 && SchemaMonth == 0 && DedicatedInstanceHour == 0;
}

/// <summary>Refuses a key under <c>Tenantry:Costs</c> that no setting reads (a misspelt price would silently cost nothing).</summary>
internal sealed class CostSettingsValidator(IConfiguration configuration) : IValidateOptions<CostOptions>
{
    public ValidateOptionsResult Validate(string? name, CostOptions options)
    {
        var problems = new List<string>();
        Unknown(configuration.GetSection(CostOptions.Section), typeof(CostOptions), problems);
        Unknown(configuration.GetSection(CostOptions.Section + ":PriceBook"), typeof(PriceBook), problems);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    private static void Unknown(IConfigurationSection section, Type type, List<string> problems)
    {
        var known = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Select(p => p.Name).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (!known.Contains(child.Key))
            {
                problems.Add($"{child.Path}: unknown setting; {(type == typeof(PriceBook) ? "prices are " + string.Join(", ", PriceBook.Items) : "settings are " + string.Join(", ", known.Order()))}");
            }
        }
    }
}
