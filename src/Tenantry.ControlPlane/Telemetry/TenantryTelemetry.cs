using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Identity;

namespace Tenantry.ControlPlane.Telemetry;

/// <summary>
/// OpenTelemetry for a Tenantry process: the platform's meter (<see cref="TenantryMetrics"/>), ASP.NET Core's
/// and Kestrel's request metrics (tagged with the tenant by the gateway and the control plane), HttpClient,
/// Npgsql and the .NET runtime. Metrics are served for Prometheus at <c>/metrics</c> (operator token) and,
/// with <see cref="TelemetryOptions.OtlpEndpoint"/>, metrics, traces and logs go to an OTLP collector.
/// </summary>
public static class TenantryTelemetry
{
    public const string MetricsPath = "/metrics";

    /// <summary>Series kept per tenant-labelled metric; beyond it, OpenTelemetry folds new ones into <c>otel_metric_overflow="true"</c>.</summary>
    public const int TenantSeriesLimit = 20_000;

    /// <summary>Meters exported besides the platform's own.</summary>
    private static readonly string[] Meters =
        [TenantryMetrics.Name, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.RateLimiting", "System.Net.Http", "Npgsql"];

    /// <param name="serviceName">The <c>service.name</c> of what this process runs (control plane, gateway replica).</param>
    /// <param name="scrapeEndpoint">Whether this process serves <c>/metrics</c> (see <see cref="MapTenantryMetrics"/>).</param>
    public static IHostApplicationBuilder AddTenantryTelemetry(this IHostApplicationBuilder builder, string serviceName, bool scrapeEndpoint)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<TelemetryOptions>().BindConfiguration(TelemetryOptions.Section).ValidateSettings(TelemetryOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>());
        services.TryAddSingleton<TenantryMetrics>();
        services.TryAddSingleton(sp => new UsageMetrics(sp.GetRequiredService<IMeterFactory>(), sp.GetRequiredService<IOptions<TelemetryOptions>>().Value.TenantTags));

        // The exporters are chosen here, before the container exists; a setting that does not bind or
        // validate is left out here and reported by the options validation when the host starts.
        TelemetryOptions settings;
        try
        {
            settings = builder.Configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        }
        catch (InvalidOperationException)
        {
            settings = new TelemetryOptions();
        }

        var otlp = new TelemetryOptionsValidator().Validate(null, settings).Succeeded ? settings.OtlpUri : null;
        var interval = (int)Math.Clamp(settings.ExportInterval.TotalMilliseconds, 100, 600_000);
        var otel = services.AddOpenTelemetry().ConfigureResource(r => r.AddService(serviceName, serviceVersion: typeof(TenantryTelemetry).Assembly.GetName().Version?.ToString()));
        otel.WithMetrics(metrics =>
        {
            metrics.AddMeter(Meters).AddRuntimeInstrumentation();
            if (settings.TenantTags)
            {
                // One series per tenant and label set: past the SDK's default of 2,000 per metric, new ones
                // would fold into a single overflow series.
                metrics.AddView(i => i.Name is "tenantry.usage.events" or "http.server.request.duration"
                    ? new MetricStreamConfiguration { CardinalityLimit = TenantSeriesLimit }
                    : null);
            }

            if (scrapeEndpoint && settings.Prometheus)
            {
                metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
            }

            if (otlp is not null)
            {
                metrics.AddOtlpExporter((exporter, reader) =>
                {
                    Point(exporter, otlp, "v1/metrics");
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = interval;
                });
            }
        });

        // Traces and logs only leave the process through OTLP; without it no span is recorded at all.
        if (otlp is not null)
        {
            otel.WithTracing(tracing => tracing
                .AddSource(TenantryMetrics.Name, "Npgsql")
                .AddAspNetCoreInstrumentation(o => o.Filter = http => !http.Request.Path.StartsWithSegments(MetricsPath) && !http.Request.Path.StartsWithSegments("/healthz"))
                .AddHttpClientInstrumentation()
                .AddOtlpExporter(exporter => Point(exporter, otlp, "v1/traces")));
            otel.WithLogging(
                logging => logging.AddOtlpExporter(exporter => Point(exporter, otlp, "v1/logs")),
                options => options.IncludeScopes = true);
        }

        return builder;
    }

    /// <summary>
    /// <c>GET /metrics</c> in Prometheus' text format (unless <see cref="TelemetryOptions.Prometheus"/> is off), for
    /// operators only: its labels name every tenant. <paramref name="policy"/> is the operator policy of this
    /// process's authentication (the control plane's own, or a gateway replica's JWT bearer one).
    /// </summary>
    public static IEndpointRouteBuilder MapTenantryMetrics(this IEndpointRouteBuilder routes, string policy = IdentityApi.AdminPolicy)
    {
        ArgumentNullException.ThrowIfNull(routes);
        if (routes.ServiceProvider.GetService<IOptions<TelemetryOptions>>()?.Value.Prometheus == true)
        {
            routes.MapPrometheusScrapingEndpoint(MetricsPath).RequireAuthorization(policy);
        }

        return routes;
    }

    private static void Point(OtlpExporterOptions exporter, Uri collector, string path)
    {
        exporter.Protocol = OtlpExportProtocol.HttpProtobuf;
        exporter.Endpoint = new Uri(collector.AbsoluteUri.TrimEnd('/') + "/" + path);
    }
}
