using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Events;

/// <summary>Settings under <c>Tenantry:Webhooks</c>: the SSRF guard and how deliveries are retried.</summary>
public sealed class WebhookOptions
{
    public const string Section = "Tenantry:Webhooks";

    /// <summary>
    /// Allow endpoints on loopback, link-local, private and multicast addresses, and plain HTTP (tests,
    /// on-premises receivers). Off: such URLs are refused when registered and again at every delivery.
    /// </summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>How long one delivery may take (connect, send, response headers) before it counts as failed.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:01:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The first retry's delay; each next one is 4 times longer (with ±20 % jitter), up to <see cref="MaxRetryDelay"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(5);

    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(6);

    /// <summary>Attempts of one delivery before it is given up (failed; it can still be replayed). The defaults retry for about a day.</summary>
    [Range(1, 50)]
    public int MaxAttempts { get; set; } = 11;

    /// <summary>An endpoint whose deliveries have failed for this long without one success is disabled (and <c>webhook.disabled</c> is published).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan DisableAfter { get; set; } = TimeSpan.FromDays(5);

    /// <summary>How long the previous secret keeps signing deliveries after a rotation.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "7.00:00:00")]
    public TimeSpan SecretRotationOverlap { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How often the worker looks for due deliveries it was not told about (retries, events of other hosts).</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Deliveries in flight at once on one host (deliveries to one endpoint for one tenant are always one at a time, in order).</summary>
    [Range(1, 1024)]
    public int MaxConcurrency { get; set; } = 64;
}

internal sealed class WebhookOptionsValidator : IValidateOptions<WebhookOptions>
{
    public ValidateOptionsResult Validate(string? name, WebhookOptions options) =>
        options.RetryBaseDelay > options.MaxRetryDelay
            ? ValidateOptionsResult.Fail($"{WebhookOptions.Section}:RetryBaseDelay ({options.RetryBaseDelay:c}) must not exceed {WebhookOptions.Section}:MaxRetryDelay ({options.MaxRetryDelay:c}).")
            : ValidateOptionsResult.Success;
}
