using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Telemetry;

/// <summary>Settings under <c>Tenantry:Telemetry</c>: metrics, traces and logs (OpenTelemetry).</summary>
public sealed class TelemetryOptions
{
    public const string Section = "Tenantry:Telemetry";

    /// <summary>Serve the metrics for Prometheus at <c>GET /metrics</c> on the control plane (operator token required).</summary>
    public bool Prometheus { get; set; } = true;

    /// <summary>
    /// An OpenTelemetry collector (OTLP over HTTP, protobuf), e.g. <c>http://127.0.0.1:4318</c>; when set, metrics,
    /// traces and logs are sent to it (to <c>/v1/metrics</c>, <c>/v1/traces</c> and <c>/v1/logs</c>). Unset: nothing is sent.
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>How often metrics are sent to the collector.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan ExportInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Label metrics with the tenant (<c>tenant.id</c>): per-tenant request rates, latencies and usage. One series per
    /// tenant and label set; turn it off for fleets too large for the metrics backend.
    /// </summary>
    public bool TenantTags { get; set; } = true;

    /// <summary>The OTLP endpoint as a URI, once validated.</summary>
    public Uri? OtlpUri => string.IsNullOrWhiteSpace(OtlpEndpoint) ? null : new Uri(OtlpEndpoint, UriKind.Absolute);
}

internal sealed class TelemetryOptionsValidator : IValidateOptions<TelemetryOptions>
{
    public ValidateOptionsResult Validate(string? name, TelemetryOptions options) =>
        string.IsNullOrWhiteSpace(options.OtlpEndpoint)
        || (Uri.TryCreate(options.OtlpEndpoint, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps))
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Tenantry:Telemetry:OtlpEndpoint: '{options.OtlpEndpoint}' is not an absolute http(s) URI of an OTLP collector (e.g. http://127.0.0.1:4318)");
}
