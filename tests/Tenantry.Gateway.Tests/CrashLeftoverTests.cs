using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// What a process killed with kill -9 in the middle of a write leaves behind is deleted when the
/// host (or the dedicated instance) starts again, and never shows up in a listing or an export.
/// </summary>
public sealed class CrashLeftoverTests
{
    private static Uri Url(string path) => new(path, UriKind.Relative);

    [Fact]
    public async Task Staging_files_of_uploads_cut_short_by_kill_9_are_deleted_at_start_and_never_exported()
    {
        var first = await TenantryHost.StartAsync(TenantryHostOptions.Platform());
        TenantryHost? second = null;
        var host = first;
        try
        {
            using var op = await host.OperatorClientAsync();
            var pool = await host.OnboardAsync(op, "crashpool", "basic");
            var silo = await host.OnboardAsync(op, "crashsilo", "premium");
            var staging = Path.Combine(host.DataDir, "tenants", ".staging");

            // The dedicated instance is killed while it stages an upload; the supervisor starts it again.
            using (var client = silo.Client())
            {
                var id = await OrderAsync(client);
                var instance = (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();
                using var upload = await StartSlowUploadAsync(host.Gateway, $"/orders/{id}/attachments/half.bin", silo.Token);
                await WaitForStagedFileAsync(staging);
                Assert.True(LocalProcesses.Signal(instance, LocalProcesses.SigKill));
                await WaitForNewInstanceAsync(client, instance);
                Assert.Empty(Directory.GetFiles(staging));
            }

            // The machine goes down while the shared instance stages a pool tenant's upload: the host and the instance are killed.
            using (var client = pool.Client())
            {
                var id = await OrderAsync(client);
                var shared = (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();
                using var upload = await StartSlowUploadAsync(host.Gateway, $"/orders/{id}/attachments/half.bin", pool.Token);
                await WaitForStagedFileAsync(staging);
                // The instance first: killed after the host, it would see its request cut off and clean up after itself.
                Assert.True(LocalProcesses.Signal(shared, LocalProcesses.SigKill));
                host.Kill(entireProcessTree: false);
            }

            Assert.NotEmpty(Directory.GetFiles(staging));

            // Siblings a crash can leave half-made: an owner file's temporary copy, an export archive being written.
            var tenantFolder = Path.Combine(host.DataDir, "tenants", pool.Slug);
            await File.WriteAllTextAsync(Path.Combine(tenantFolder, ".tenant-id.tmp"), pool.Id.ToString()[..8]);
            await File.WriteAllTextAsync(Path.Combine(tenantFolder, "exports", "crashpool-export-0.zip.partial"), "PK");
            foreach (var planted in new[] { Path.Combine(tenantFolder, ".tenant-id.tmp"), Path.Combine(tenantFolder, "exports", "crashpool-export-0.zip.partial") })
            {
                File.SetLastWriteTimeUtc(planted, DateTime.UtcNow.AddMinutes(-1)); // Last written by the crashed process, a while ago.
            }

            second = await TenantryHost.StartAsync(TenantryHostOptions.Platform() with { DataDir = first.DataDir, Ports = first.Ports });
            host = second;
            Assert.Empty(Directory.GetFiles(staging));
            Assert.False(File.Exists(Path.Combine(tenantFolder, ".tenant-id.tmp")), "The owner file's temporary copy was left.");
            Assert.Empty(Directory.GetFiles(Path.Combine(tenantFolder, "exports"), "*.partial"));

            using var op2 = await host.OperatorClientAsync();
            using (var offboard = await op2.DeleteAsync(Url($"/v1/tenants/{pool.Id}")))
            {
                Assert.Equal(HttpStatusCode.Accepted, offboard.StatusCode);
            }

            await TenantryHost.WaitForStatusAsync(op2, pool.Id.ToString(), "offboarded");
            var archive = Assert.Single(Directory.GetFiles(Path.Combine(tenantFolder, "exports"), "*.zip"));
            using var zip = ZipFile.OpenRead(archive);
            var names = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("tenant.json", names);
            Assert.DoesNotContain(names, n => n.Contains(".staging", StringComparison.Ordinal) || n.Contains(".tmp", StringComparison.Ordinal)
                || n.Contains(".partial", StringComparison.Ordinal) || n.Contains(".tenant-id", StringComparison.Ordinal) || n.Contains("half.bin", StringComparison.Ordinal));
            Assert.Empty(Directory.GetFiles(staging));
        }
        catch
        {
            Console.WriteLine(host.Output);
            throw;
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }

            await first.DisposeAsync();
        }
    }

    private static async Task<Guid> OrderAsync(HttpClient client)
    {
        using var order = await client.PostAsJsonAsync("/orders", new { amount = 1m });
        Assert.Equal(HttpStatusCode.Created, order.StatusCode);
        return (await order.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    /// <summary>A chunked PUT that sends 1 MB and then holds the connection open, sending nothing more.</summary>
    private static async Task<TcpClient> StartSlowUploadAsync(Uri server, string path, string token)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port);
        var stream = tcp.GetStream();
        var head = $"PUT {path} HTTP/1.1\r\nHost: {server.Authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(head));
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'x');
        for (var i = 0; i < 16; i++)
        {
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"{chunk.Length:X}\r\n"));
            await stream.WriteAsync(chunk);
            await stream.WriteAsync("\r\n"u8.ToArray());
        }

        return tcp;
    }

    private static async Task WaitForStagedFileAsync(string staging)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && !(Directory.Exists(staging) && Directory.GetFiles(staging).Any(f => new FileInfo(f).Length > 0)))
        {
            await Task.Delay(50);
        }

        Assert.True(Directory.Exists(staging) && Directory.GetFiles(staging).Length > 0, "No upload was staged.");

        // Clean-up leaves files written in the last second alone (a writer elsewhere may be about to lock a new file).
        await Task.Delay(TimeSpan.FromSeconds(2));
    }

    private static async Task WaitForNewInstanceAsync(HttpClient client, int old)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            using var response = await client.GetAsync(Url("/instance"));
            if (response.IsSuccessStatusCode
                && (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32() != old)
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail("The dedicated instance was not started again.");
    }
}
