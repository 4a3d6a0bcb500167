using System.Net;
using System.Text.RegularExpressions;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>The gateway's requests in the control plane's <c>/metrics</c>, labelled with their tenant.</summary>
[Collection(PlatformCollection.Name)]
public sealed partial class GatewayMetricsTests(PlatformFixture platform)
{
    [Fact]
    public async Task Gateway_requests_are_counted_per_tenant_and_only_operators_read_them()
    {
        using (var acme = platform.Acme.Client())
        {
            for (var i = 0; i < 3; i++)
            {
                using var ok = await acme.GetAsync(new Uri("/orders?limit=1", UriKind.Relative));
                Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            }
        }

        using (var bravo = platform.Bravo.Client())
        using (var ok = await bravo.GetAsync(new Uri("/orders?limit=1", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        // Neither a tenant's token nor none at all reads the metrics: their labels name every tenant.
        using (var tenant = new HttpClient { BaseAddress = platform.Host.ControlPlane })
        {
            tenant.DefaultRequestHeaders.Authorization = new("Bearer", platform.Acme.Token);
            using var forbidden = await tenant.GetAsync(new Uri("/metrics", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
            tenant.DefaultRequestHeaders.Authorization = null;
            using var anonymous = await tenant.GetAsync(new Uri("/metrics", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var text = await platform.Operator.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.True(GatewayRequests(text, platform.Acme.Id) >= 3, text);
        Assert.True(GatewayRequests(text, platform.Bravo.Id) >= 1, text);
    }

    /// <summary>Sum of http_server_request_duration_seconds_count over the series labelled with the tenant and a 200 status.</summary>
    private static double GatewayRequests(string metrics, Guid tenant) =>
        Count().Matches(metrics)
            .Where(m => m.Groups["labels"].Value.Contains($"tenant_id=\"{tenant}\"", StringComparison.Ordinal)
                && m.Groups["labels"].Value.Contains("http_response_status_code=\"200\"", StringComparison.Ordinal))
            .Sum(m => double.Parse(m.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^http_server_request_duration_seconds_count\{(?<labels>.*)\} (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Count();
}
