using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Health;

/// <summary>Per-tenant health in the control-plane store, under <c>Tenantry:Health</c>.</summary>
public sealed class HealthOptions
{
    public const string Section = "Tenantry:Health";

    /// <summary>How long per-minute rows are kept; older figures are read from the hourly rows.</summary>
    [Range(typeof(TimeSpan), "03:00:00", "366.00:00:00")]
    public TimeSpan MinuteRetention { get; set; } = TimeSpan.FromDays(14);

    /// <summary>How many calendar months hourly rows are kept.</summary>
    [Range(1, 120)]
    public int HourRetentionMonths { get; set; } = 13;

    /// <summary>How often finished hours are rolled up from their minutes and expired rows are deleted.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan MaintenanceInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>A sample for a minute longer ago than this is not stored (a gateway's backlog from a long outage); it is reported back as late.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "1.00:00:00")]
    public TimeSpan MaxLateness { get; set; } = TimeSpan.FromHours(1);
}

internal sealed class HealthOptionsValidator : IValidateOptions<HealthOptions>
{
    public ValidateOptionsResult Validate(string? name, HealthOptions options) =>
        options.MinuteRetention < options.MaxLateness + TimeSpan.FromHours(2)
            ? ValidateOptionsResult.Fail($"{HealthOptions.Section}:MinuteRetention must be at least {HealthOptions.Section}:MaxLateness plus two hours, so every late minute is rolled up into its hour before it expires.")
            : ValidateOptionsResult.Success;
}
