using System.Net;
using System.Net.Http.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Objects;

/// <summary>
/// The object API under the plan's storage quota and its size limit: a write that would pass
/// either is refused with problem details and leaves nothing behind, however the body is sent.
/// </summary>
public sealed class ObjectQuotaTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    private static Uri Url(string path) => new(path, UriKind.Relative);

    /// <summary>A body of <paramref name="bytes"/> sent chunked: no Content-Length to check up front.</summary>
    private static StreamContent Chunked(long bytes) => new(new PatternStream(bytes));

    private string TenantFolder(string slug) => Path.Combine(factory.DataDir, "tenants", slug);

    /// <summary>Files being written (or left behind by a failed write) in the staging folder.</summary>
    private IEnumerable<string> Staged()
    {
        var staging = Path.Combine(factory.DataDir, "tenants", ".staging");
        return Directory.Exists(staging) ? Directory.EnumerateFiles(staging) : [];
    }

    private static long FolderBytes(string folder) =>
        Directory.Exists(folder) ? new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).Where(f => f.Name != ".tenant-id").Sum(f => f.Length) : 0;

    [Fact]
    public async Task A_write_past_the_plans_hard_storage_quota_gets_413_and_stores_nothing()
    {
        using var op = await factory.OperatorAsync();
        using (var plan = await op.PostAsJsonAsync("/v1/plans", new
        {
            id = "storage-1k", name = "Storage 1k", tier = "basic", isolation = "pool", basePrice = 1,
            quotas = new object[] { new { meter = "storage_bytes", limit = 1000, kind = "hard" } },
        }))
        {
            Assert.Equal(HttpStatusCode.Created, plan.StatusCode);
        }

        var id = await op.CreateActiveTenantAsync("quota-co");
        using (var change = await op.PostAsJsonAsync($"/v1/tenants/{id}/plan", new { planId = "storage-1k" }))
        {
            Assert.True(change.IsSuccessStatusCode, await change.Content.ReadAsStringAsync());
        }

        using (var first = await op.PutAsync(Url("/v1/tenants/quota-co/objects/a.bin"), new ByteArrayContent(new byte[600])))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        // 600 + 500 > 1000: refused, with a length and chunked alike.
        foreach (var body in new HttpContent[] { new ByteArrayContent(new byte[500]), Chunked(500) })
        {
            using var refused = await op.PutAsync(Url("/v1/tenants/quota-co/objects/b.bin"), body);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
            var problem = await refused.JsonAsync();
            Assert.Equal("https://tenantry.dev/problems/storage-quota-exceeded", problem.GetProperty("type").GetString());
            Assert.Contains("1000", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Equal(600, FolderBytes(TenantFolder("quota-co")));
        Assert.Empty(Staged());

        // Replacing an object counts its new size only; deleting one frees its bytes.
        using (var replaced = await op.PutAsync(Url("/v1/tenants/quota-co/objects/a.bin"), new ByteArrayContent(new byte[900])))
        {
            Assert.Equal(HttpStatusCode.OK, replaced.StatusCode);
        }

        using (var deleted = await op.DeleteAsync(Url("/v1/tenants/quota-co/objects/a.bin")))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using (var fits = await op.PutAsync(Url("/v1/tenants/quota-co/objects/b.bin"), Chunked(1000)))
        {
            Assert.Equal(HttpStatusCode.OK, fits.StatusCode);
        }

        Assert.Equal(1000, FolderBytes(TenantFolder("quota-co")));
    }

    [Fact]
    public async Task A_chunked_object_over_the_size_limit_gets_413_and_leaves_no_file()
    {
        using var op = await factory.OperatorAsync();
        await op.CreateActiveTenantAsync("big-co");
        using var response = await op.PutAsync(Url("/v1/tenants/big-co/objects/big.bin"), Chunked(40L * 1024 * 1024));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/payload-too-large", (await response.JsonAsync()).GetProperty("type").GetString());
        Assert.Equal(0, FolderBytes(TenantFolder("big-co")));
        Assert.Empty(Staged());
    }

    [Fact]
    public async Task An_object_name_segment_over_255_bytes_of_utf8_gets_400()
    {
        using var op = await factory.OperatorAsync();
        await op.CreateActiveTenantAsync("long-co");
        using var response = await op.PutAsync(Url("/v1/tenants/long-co/objects/" + Uri.EscapeDataString(new string('ä', 128))), new ByteArrayContent("x"u8.ToArray()));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("255 bytes", (await response.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }
}
