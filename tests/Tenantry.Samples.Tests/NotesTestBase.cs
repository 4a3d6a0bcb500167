using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Tenantry.Samples.Tests;

/// <summary>What the notes tests share: the gateway's test key, a folder for database files, and calls with a context token.</summary>
public abstract class NotesTestBase : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("tenantry-notes-");

    internal ContextSigner Gateway { get; } = ContextSigner.FromResource("tenant-context-test-key.pem");

    /// <summary>A path for a database file in this test's folder.</summary>
    protected string DatabasePath(string name) => Path.Combine(_folder.FullName, name + ".db");

    internal static async Task<HttpResponseMessage> SendAsync(NotesInstance instance, HttpMethod method, string path, string? token, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Add("X-Tenant-Context", token);
        }

        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        return await instance.Http.SendAsync(request);
    }

    /// <summary>The JSON answer, after checking its status.</summary>
    internal static async Task<JsonElement> JsonAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    /// <summary>A problem-details answer with <paramref name="status"/> and the problem type ending in <paramref name="kind"/>.</summary>
    internal static async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode status, string kind)
    {
        var problem = await JsonAsync(response, status);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("https://tenantry.dev/problems/" + kind, problem.GetProperty("type").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
        return problem;
    }

    public void Dispose()
    {
        Gateway.Dispose();
        _folder.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }
}
