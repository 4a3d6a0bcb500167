using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// Attachments through the real gateway, on the shared instance and on a dedicated one: limits hold
/// however a body is sent, failed uploads leave nothing behind, and requests that cannot be served
/// get a 4xx or 503 problem, never a 500.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class AttachmentUploadTests(PlatformFixture platform)
{
    private const string Problems = "https://tenantry.dev/problems/";

    private static Uri Url(string path) => new(path, UriKind.Relative);

    private TenantHandle Tenant(string slug) => slug == "mega" ? platform.Mega : platform.Acme;

    private static async Task<Guid> OrderAsync(HttpClient client)
    {
        using var order = await client.PostAsJsonAsync("/orders", new { amount = 1m });
        Assert.Equal(HttpStatusCode.Created, order.StatusCode);
        return (await order.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>Every file of the tenant's folder and of the staging folder, but the owner marker.</summary>
    private string[] StoredFiles(string slug) =>
        [.. new[] { Path.Combine(platform.Host.DataDir, "tenants", slug), Path.Combine(platform.Host.DataDir, "tenants", ".staging") }
            .Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d, "*", SearchOption.AllDirectories))
            .Where(f => Path.GetFileName(f) != ".tenant-id" && !f.Contains("/exports/", StringComparison.Ordinal))];

    [Theory]
    [InlineData("acme")]
    [InlineData("mega")]
    public async Task A_chunked_attachment_over_the_limit_gets_413_and_leaves_no_file(string slug)
    {
        using var client = Tenant(slug).Client();
        var id = await OrderAsync(client);
        var before = StoredFiles(slug);

        // 40 MB without a Content-Length (past the app's 10 MB and Kestrel's 30 MB default alike),
        // sent as curl does: the answer is read while sending, and sending stops when it comes.
        var (status, text) = await ChunkedPutAsync(platform.Host.Gateway, $"/orders/{id}/attachments/big.bin", Tenant(slug).Token, 40L * 1024 * 1024);
        // Through the gateway to a dedicated instance too: the app's own answer, not the proxy's 502.
        Assert.True(status == 413, text);
        Assert.Contains(Problems + "payload-too-large", text, StringComparison.Ordinal);
        Assert.Contains("An attachment is at most", text, StringComparison.Ordinal);

        Assert.Equal(before, StoredFiles(slug));

        using var missing = await client.GetAsync(Url($"/orders/{id}/attachments/big.bin"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Theory]
    [InlineData("acme")]
    [InlineData("mega")]
    public async Task An_upload_the_client_abandons_leaves_no_partial_file(string slug)
    {
        using var client = Tenant(slug).Client();
        var id = await OrderAsync(client);
        var before = StoredFiles(slug);

        await Assert.ThrowsAnyAsync<Exception>(() => client.PutAsync(
            Url($"/orders/{id}/attachments/half.bin"), new StreamContent(new PatternStream(8L * 1024 * 1024, failAfter: 2L * 1024 * 1024))));

        // The app notices the abort when its next read fails, which may come after the client gave up:
        // wait, bounded, until the files are as before and stay so for a second.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        var settled = 0;
        while (settled < 10 && DateTime.UtcNow < deadline)
        {
            settled = StoredFiles(slug).SequenceEqual(before) ? settled + 1 : 0;
            await Task.Delay(100);
        }

        Assert.Equal(before, StoredFiles(slug));
    }

    [Theory]
    [InlineData("acme")]
    [InlineData("mega")]
    public async Task An_attachment_name_over_255_bytes_of_utf8_gets_400_with_the_limit(string slug)
    {
        using var client = Tenant(slug).Client();
        var id = await OrderAsync(client);
        using var response = await client.PutAsync(Url($"/orders/{id}/attachments/{Uri.EscapeDataString(new string('ä', 128))}"), new ByteArrayContent("x"u8.ToArray()));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(Problems + "unsafe-name", problem.GetProperty("type").GetString());
        Assert.Contains("255 bytes", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // 127 two-byte letters (254 bytes) are fine.
        using var fits = await client.PutAsync(Url($"/orders/{id}/attachments/{Uri.EscapeDataString(new string('ä', 127))}"), new ByteArrayContent("x"u8.ToArray()));
        Assert.Equal(HttpStatusCode.Created, fits.StatusCode);
    }

    [Fact]
    public async Task A_signed_context_of_an_offboarded_or_unknown_tenant_gets_503_at_the_shared_instance()
    {
        var bridge = await platform.Host.OnboardAsync(platform.Operator, "gone-bridge", "standard");
        var pool = await platform.Host.OnboardAsync(platform.Operator, "gone-pool", "basic");
        foreach (var tenant in new[] { bridge, pool })
        {
            using var client = tenant.Client();
            await OrderAsync(client); // The shared instance has located the tenant's data now.
        }

        foreach (var tenant in new[] { bridge, pool })
        {
            using var offboard = await platform.Operator.DeleteAsync(Url($"/v1/tenants/{tenant.Id}"));
            Assert.Equal(HttpStatusCode.Accepted, offboard.StatusCode);
            await TenantryHost.WaitForStatusAsync(platform.Operator, tenant.Id.ToString(), "offboarded");
        }

        // A context signed with the real key (a request in flight, or a leaked key) reaches the shared instance directly.
        using var key = TenantContextSigningKey.LoadOrCreate(ContextTokens.KeyFile(platform.Host.DataDir));
        using var direct = new HttpClient { BaseAddress = platform.Host.SharedApp };
        var contexts = new[]
        {
            ("offboarded bridge", bridge.Id, bridge.Slug, IsolationModel.Bridge),
            ("offboarded pool", pool.Id, pool.Slug, IsolationModel.Pool),
            ("unknown pool", Guid.NewGuid(), "never-was", IsolationModel.Pool),
            ("unknown bridge", Guid.NewGuid(), "never-was-either", IsolationModel.Bridge),
        };
        foreach (var (name, tenantId, tenantSlug, isolation) in contexts)
        {
            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Post })
            {
                // What the shared instance located before offboarding is checked again within seconds; never a 500 meanwhile.
                var deadline = DateTime.UtcNow.AddSeconds(10);
                HttpStatusCode status;
                string text;
                do
                {
                    using var request = new HttpRequestMessage(method, "/orders");
                    if (method == HttpMethod.Post)
                    {
                        request.Content = JsonContent.Create(new { amount = 1m });
                    }

                    request.Headers.Add(AspNetCore.TenantContextToken.Header, ContextTokens.Sign(key, new AspNetCore.TenantContext
                    {
                        TenantId = tenantId, Slug = tenantSlug, Tier = "basic", Isolation = isolation, Subject = "x", Roles = ["admin"],
                    }));
                    using var response = await direct.SendAsync(request);
                    (status, text) = (response.StatusCode, await response.Content.ReadAsStringAsync());
                    Assert.True((int)status < 500 || status == HttpStatusCode.ServiceUnavailable, $"{name} {method}: {(int)status} {text}");
                    if (status != HttpStatusCode.ServiceUnavailable)
                    {
                        await Task.Delay(200);
                    }
                }
                while (status != HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline);
                Assert.True(status == HttpStatusCode.ServiceUnavailable, $"{name} {method}: {(int)status} {text}");
                Assert.Contains(Problems + "tenant-data-unavailable", text, StringComparison.Ordinal);
            }
        }
    }

    /// <summary>A chunked PUT over a plain socket that reads the response while it sends and stops sending once it has one.</summary>
    private static async Task<(int Status, string Text)> ChunkedPutAsync(Uri server, string path, string token, long bytes)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port);
        var stream = tcp.GetStream();
        var head = $"PUT {path} HTTP/1.1\r\nHost: {server.Authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(head));
        var reading = ReadResponseAsync(stream);
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'x');
        var prefix = System.Text.Encoding.ASCII.GetBytes($"{chunk.Length:X}\r\n");
        try
        {
            for (long sent = 0; sent < bytes && !reading.IsCompleted; sent += chunk.Length)
            {
                await stream.WriteAsync(prefix);
                await stream.WriteAsync(chunk);
                await stream.WriteAsync("\r\n"u8.ToArray());
            }

            if (!reading.IsCompleted)
            {
                await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
            }
        }
        catch (IOException)
        {
            // The server closed its side after answering: the answer is what counts.
        }

        var text = await reading.WaitAsync(TimeSpan.FromSeconds(60));
        return (int.Parse(text.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture), text);
    }

    /// <summary>The response's head and body as text, read until the problem's JSON ends or the connection closes.</summary>
    private static async Task<string> ReadResponseAsync(Stream stream)
    {
        var text = new System.Text.StringBuilder();
        var buffer = new byte[8192];
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            text.Append(System.Text.Encoding.UTF8.GetString(buffer, 0, read));
            var s = text.ToString();
            var body = s.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (body >= 0 && s.IndexOf('}', body) >= 0)
            {
                break;
            }
        }

        return text.ToString();
    }
}
