using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>Tenant work queues, under <c>Tenantry:Jobs</c>.</summary>
public sealed class JobsOptions
{
    public const string Section = "Tenantry:Jobs";

    /// <summary>The largest payload a job may carry, in bytes of its JSON text.</summary>
    [Range(1, 1024 * 1024)]
    public int MaxPayloadBytes { get; set; } = 64 * 1024;

    /// <summary>Job types accepted at enqueue; empty accepts any well-formed type name.</summary>
    public List<string> Types { get; set; } = [];

    /// <summary>Runs a job gets (leases that end in a nack or a lapsed visibility timeout) before it goes to its tenant's dead-letter queue.</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 5;

    /// <summary>The wait before the first retry; each further retry waits twice as long, up to <see cref="MaxBackoff"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan Backoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between retries.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The longest visibility timeout a worker may ask for (and so the longest lifetime of a job's scoped token).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "12:00:00")]
    public TimeSpan MaxVisibility { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long finished (succeeded) jobs are kept for GET before they are deleted.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "366.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);
}

internal sealed class JobsOptionsValidator : IValidateOptions<JobsOptions>
{
    public ValidateOptionsResult Validate(string? name, JobsOptions options)
    {
        var bad = options.Types.FirstOrDefault(t => !JobRules.IsTypeName(t));
        if (bad is not null)
        {
            return ValidateOptionsResult.Fail($"{JobsOptions.Section}:Types: '{bad}' is not a job type name (1-100 of a-z, 0-9, '.', '-', '_', starting with a letter).");
        }

        return options.MaxBackoff < options.Backoff
            ? ValidateOptionsResult.Fail($"{JobsOptions.Section}:MaxBackoff must be at least {JobsOptions.Section}:Backoff.")
            : ValidateOptionsResult.Success;
    }
}
