using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Health;
using Tenantry.Gateway;
using Tenantry.Health;

namespace Tenantry.Host;

/// <summary>The host's own gateway writes its health batches straight into the control plane's store.</summary>
internal sealed class ControlPlaneHealthSink(ITenantHealthWriter writer) : ITenantHealthSink
{
    public Task WriteAsync(TenantHealthBatch batch, CancellationToken cancellationToken) => writer.WriteAsync(batch, cancellationToken);
}

/// <summary>
/// A gateway replica posts its health batches to <c>POST /v1/health/samples</c> of the control plane, with
/// the token it reads the routing table with. A batch the control plane refuses as malformed (400, 413)
/// would be refused again: it is logged and dropped; any other failure leaves it to be sent again.
/// </summary>
internal sealed partial class HttpHealthSink(HttpClient http, ReplicaCredentials credentials, IOptions<GatewayOptions> gateway, ILogger<HttpHealthSink> logger)
    : ITenantHealthSink, IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task WriteAsync(TenantHealthBatch batch, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway.Value.Authority!, "v1/health/samples"))
        {
            Content = JsonContent.Create(batch, options: Json),
        };
        await credentials.AuthorizeAsync(request, cancellationToken);
        using var response = await http.SendAsync(request, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            credentials.Forget();
        }

        if (response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge)
        {
            Log.Refused(logger, batch.Samples.Count, (int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
            return;
        }

        response.EnsureSuccessStatusCode();
    }

    public void Dispose() => http.Dispose();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "The control plane refused a health batch of {Samples} samples ({Status}): {Problem}; dropped")]
        public static partial void Refused(ILogger logger, int samples, int status, string problem);
    }
}
