using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Tenantry.Benchmarks;

internal sealed record CreatedTenant(string Id, string? OperationId, string Status, DateTimeOffset CreatedAt);

internal sealed record StepView(string Name, string Status, int Attempts, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, string? Error);

internal sealed record OperationView(
    string Id,
    string Status,
    string? Error,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    IReadOnlyList<StepView> Steps);

internal sealed record TenantPage(IReadOnlyList<CreatedTenant> Items, string? NextCursor);

/// <summary>The few calls of the Tenantry REST API v1 the benchmarks make.</summary>
internal sealed class TenantryApi : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http;

    public TenantryApi(Uri address)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(30),
            MaxConnectionsPerServer = 512,
            UseProxy = false,
            AllowAutoRedirect = false,
        };
        _http = new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>Gets an operator token (client credentials) and sends it with every later call.</summary>
    public async Task AuthenticateAsync(string secret, CancellationToken cancellationToken)
    {
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = "operator",
            ["client_secret"] = secret,
            ["scope"] = "tenantry:admin",
        });
        using var response = await _http.PostAsync(new Uri("connect/token", UriKind.Relative), form, cancellationToken);
        await EnsureAsync(response, HttpStatusCode.OK, "POST /connect/token", cancellationToken);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(Json, cancellationToken);
        var token = body.GetProperty("access_token").GetString()
            ?? throw new InvalidOperationException("POST /connect/token answered without an access_token.");
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public async Task<CreatedTenant> CreateTenantAsync(string name, string slug, string adminEmail, CancellationToken cancellationToken)
    {
        using var content = JsonContent.Create(new { name, slug, tier = "basic", adminEmail }, options: Json);
        using var response = await _http.PostAsync(new Uri("v1/tenants", UriKind.Relative), content, cancellationToken);
        await EnsureAsync(response, HttpStatusCode.Accepted, "POST /v1/tenants", cancellationToken);
        var tenant = await response.Content.ReadFromJsonAsync<CreatedTenant>(Json, cancellationToken);
        return tenant is { OperationId: not null }
            ? tenant
            : throw new InvalidOperationException($"POST /v1/tenants ({slug}) answered 202 without an operationId.");
    }

    /// <summary>The operation; with <paramref name="waitSeconds"/> &gt; 0 the host answers once it has finished (long-poll).</summary>
    public async Task<OperationView> GetOperationAsync(string id, int waitSeconds, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(new Uri($"v1/operations/{id}?wait={waitSeconds}", UriKind.Relative), cancellationToken);
        await EnsureAsync(response, HttpStatusCode.OK, $"GET /v1/operations/{id}", cancellationToken);
        return await response.Content.ReadFromJsonAsync<OperationView>(Json, cancellationToken)
            ?? throw new InvalidOperationException($"GET /v1/operations/{id} answered null.");
    }

    /// <summary>Ids of every tenant in <paramref name="status"/>, page by page (bounded).</summary>
    public async Task<HashSet<string>> TenantIdsAsync(string status, int maxPages, CancellationToken cancellationToken)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        string? cursor = null;
        for (var page = 0; page < maxPages; page++)
        {
            var path = $"v1/tenants?status={status}&limit=200" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
            using var response = await _http.GetAsync(new Uri(path, UriKind.Relative), cancellationToken);
            await EnsureAsync(response, HttpStatusCode.OK, "GET /v1/tenants", cancellationToken);
            var body = await response.Content.ReadFromJsonAsync<TenantPage>(Json, cancellationToken)
                ?? throw new InvalidOperationException("GET /v1/tenants answered null.");
            ids.UnionWith(body.Items.Select(t => t.Id));
            cursor = body.NextCursor;
            if (cursor is null)
            {
                break;
            }
        }

        return ids;
    }

    /// <summary>Milliseconds from sending a GET to reading its whole 200 body.</summary>
    public async Task<double> TimeGetAsync(string path, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative), cancellationToken);
        await response.Content.LoadIntoBufferAsync(cancellationToken);
        var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        await EnsureAsync(response, HttpStatusCode.OK, "GET /" + path, cancellationToken);
        return elapsed;
    }

    public async Task<JsonElement> GetJsonAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative), cancellationToken);
        await EnsureAsync(response, HttpStatusCode.OK, "GET /" + path, cancellationToken);
        return await response.Content.ReadFromJsonAsync<JsonElement>(Json, cancellationToken);
    }

    public void Dispose() => _http.Dispose();

    private static async Task EnsureAsync(HttpResponseMessage response, HttpStatusCode expected, string call, CancellationToken cancellationToken)
    {
        if (response.StatusCode != expected)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new HttpRequestException($"{call} answered {(int)response.StatusCode} (expected {(int)expected}): {body}", null, response.StatusCode);
        }
    }
}
