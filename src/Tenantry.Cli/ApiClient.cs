using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary>Exit codes scripts can rely on; listed in <c>tenantry --help</c>.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int NotFound = 3;
    public const int Unauthorized = 4;
    public const int Rejected = 5;
    public const int Unreachable = 6;
    public const int OperationFailed = 7;
    public const int Denied = 8;

    public const string Help = """
        Exit codes: 0 ok; 1 server error; 2 bad command line; 3 not found; 4 not logged in, token refused
        or not allowed; 5 request rejected (validation, conflict, stale ETag); 6 server unreachable or not
        a Tenantry API; 7 the operation watched ended failed; 8 a simulated policy request was denied.
        """;
}

/// <summary>A failure the user should read: one line, and the exit code it maps to.</summary>
internal sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>The REST API v1 over HTTP; every failure becomes a <see cref="CliException"/> with a clear message.</summary>
internal sealed class ApiClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string? _token;

    public ApiClient(Uri baseAddress, string? token, TimeSpan? timeout = null)
    {
        _http = new HttpClient { BaseAddress = baseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(60) };
        _token = token;
    }

    public Uri BaseAddress => _http.BaseAddress!;

    public Task<JsonElement> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, null, cancellationToken);

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, IReadOnlyDictionary<string, string>? headers, CancellationToken cancellationToken)
    {
        // Sent even without a token, so a wrong URL says so rather than "not logged in".
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (!string.IsNullOrEmpty(_token))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        }

        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await SendRawAsync(request, cancellationToken);
        return await ReadAsync(response, cancellationToken);
    }

    /// <summary>OAuth2 client credentials at <c>/connect/token</c>: the access token and its lifetime.</summary>
    public async Task<(string Token, int ExpiresIn)> TokenAsync(string clientId, string secret, string scope, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/connect/token", UriKind.Relative))
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials",
                ["client_id"] = clientId,
                ["client_secret"] = secret,
                ["scope"] = scope,
            }),
        };
        using var response = await SendRawAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        var json = TryParse(text);
        if (!response.IsSuccessStatusCode)
        {
            var reason = json is { ValueKind: JsonValueKind.Object } e && e.TryGetProperty("error_description", out var d) ? d.GetString() : $"HTTP {(int)response.StatusCode}";
            throw response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden
                ? new CliException(ExitCodes.Unauthorized, $"Login refused: {reason}")
                : Unexpected(response, text);
        }

        if (json is not { ValueKind: JsonValueKind.Object } token || !token.TryGetProperty("access_token", out var access))
        {
            throw NotTenantry(text);
        }

        return (access.GetString()!, token.TryGetProperty("expires_in", out var expires) ? expires.GetInt32() : 3600);
    }

    public void Dispose() => _http.Dispose();

    private async Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        try
        {
            return await _http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(ExitCodes.Unreachable, $"Cannot reach Tenantry at {BaseAddress}: {e.Message.TrimEnd('.')}. Check --url (or TENANTRY_URL).");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CliException(ExitCodes.Unreachable, $"Tenantry at {BaseAddress} did not answer within {_http.Timeout.TotalSeconds:0} s.");
        }
    }

    private async Task<JsonElement> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            if (text.Length == 0)
            {
                return default;
            }

            return TryParse(text) ?? throw NotTenantry(text);
        }

        var problem = TryParse(text);
        if (problem is not { ValueKind: JsonValueKind.Object } p)
        {
            throw response.StatusCode == HttpStatusCode.Unauthorized ? Refused() : Unexpected(response, text);
        }

        var message = Describe(p) ?? $"HTTP {(int)response.StatusCode}";
        throw response.StatusCode switch
        {
            HttpStatusCode.Unauthorized => Refused(),
            HttpStatusCode.Forbidden => new CliException(ExitCodes.Unauthorized, $"Not allowed: {message} (the token lacks scope tenantry:admin?)"),
            HttpStatusCode.NotFound => new CliException(ExitCodes.NotFound, message),
            >= HttpStatusCode.InternalServerError => new CliException(ExitCodes.Failure, $"The server failed: {message}"),
            _ => new CliException(ExitCodes.Rejected, message),
        };
    }

    private CliException Refused() => string.IsNullOrEmpty(_token)
        ? new(ExitCodes.Unauthorized, $"Not logged in to {BaseAddress}: run `tenantry login --client-secret <secret>` (or set TENANTRY_TOKEN).")
        : new(ExitCodes.Unauthorized, "The token was refused: it is expired or not issued by this server. Run `tenantry login` again.");

    private CliException NotTenantry(string text) =>
        new(ExitCodes.Unreachable, $"{BaseAddress} answered, but not as the Tenantry API ({Snippet(text)}). Check --url.");

    private CliException Unexpected(HttpResponseMessage response, string text) =>
        (int)response.StatusCode == 404
            ? new CliException(ExitCodes.Unreachable, $"{BaseAddress} has no such endpoint (404): is it a Tenantry server? Check --url.")
            : new CliException(ExitCodes.Failure, $"HTTP {(int)response.StatusCode} from {BaseAddress}: {Snippet(text)}");

    /// <summary>Problem details as one line: title, detail and each field error.</summary>
    private static string? Describe(JsonElement problem)
    {
        string? Text(string name) =>
            problem.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(v.GetString()) ? v.GetString()!.Trim().TrimEnd('.') : null;

        var parts = new List<string>();
        if (Text("title") is { } title)
        {
            parts.Add(title);
        }

        if (problem.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
        {
            foreach (var field in errors.EnumerateObject())
            {
                var messages = field.Value.ValueKind == JsonValueKind.Array
                    ? string.Join(" ", field.Value.EnumerateArray().Select(m => m.ToString().Trim().TrimEnd('.')).Distinct(StringComparer.Ordinal))
                    : field.Value.ToString();
                parts.Add($"{field.Name}: {messages}");
            }
        }
        else if (Text("detail") is { } detail)
        {
            parts.Add(detail);
        }

        return parts.Count == 0 ? null : string.Join(". ", parts.Distinct(StringComparer.Ordinal)) + ".";
    }

    private static JsonElement? TryParse(string text)
    {
        try
        {
            return text.Length == 0 ? null : JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Snippet(string text)
    {
        var line = text.ReplaceLineEndings(" ").Trim();
        return line.Length == 0 ? "empty body" : line.Length > 80 ? line[..80] + "…" : line;
    }
}
