using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Tenantry.Gateway;

namespace Tenantry.Host;

/// <summary>
/// A gateway replica's access token for the control plane (client credentials of <c>Tenantry:Gateway:ClientId</c>,
/// scope <c>tenantry:routes</c>), shared by its calls (the routing table, its health batches) and renewed before it expires.
/// </summary>
internal sealed class ReplicaCredentials(HttpClient http, IOptions<ReplicaOptions> options, IOptions<GatewayOptions> gateway, TimeProvider time) : IDisposable
{
    private volatile Issued? _issued;

    /// <summary>Sets the replica's token on <paramref name="request"/>.</summary>
    public async Task AuthorizeAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await TokenAsync(cancellationToken));
    }

    /// <summary>The control plane refused the token (401): the next call gets a new one.</summary>
    public void Forget() => _issued = null;

    public void Dispose() => http.Dispose();

    private async Task<string> TokenAsync(CancellationToken cancellationToken)
    {
        if (_issued is { } issued && time.GetUtcNow() < issued.RenewAt)
        {
            return issued.Token;
        }

        var o = options.Value;
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = o.ClientId,
            ["client_secret"] = o.ClientSecret!,
            ["scope"] = "tenantry:routes",
        });
        using var response = await http.PostAsync(new Uri(gateway.Value.Authority!, "connect/token"), form, cancellationToken);
        response.EnsureSuccessStatusCode();
        var token = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        var value = token.GetProperty("access_token").GetString()!;
        // Renew a minute early (or halfway for short lifetimes), so a call never presents an expired token.
        var lifetime = TimeSpan.FromSeconds(token.TryGetProperty("expires_in", out var e) ? e.GetInt32() : 300);
        _issued = new Issued(value, time.GetUtcNow() + (lifetime > TimeSpan.FromMinutes(2) ? lifetime - TimeSpan.FromMinutes(1) : lifetime / 2));
        return value;
    }

    private sealed record Issued(string Token, DateTimeOffset RenewAt);
}
