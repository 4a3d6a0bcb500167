using Microsoft.AspNetCore.Hosting;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Billing;

/// <summary>The platform meters itself: api_calls from its own API, storage_bytes and compute_seconds from samples.</summary>
[Collection(SoloCollection.Name)]
public sealed class BuiltInUsageTests : IDisposable
{
    private readonly TenantryFactory _root = new();

    [Fact]
    public async Task Api_calls_storage_bytes_and_compute_seconds_are_metered_by_the_platform()
    {
        using var app = _root.WithWebHostBuilder(b =>
        {
            b.UseSetting("Tenantry:Billing:SampleInterval", "00:00:01");
            b.UseSetting("Tenantry:Billing:ApiCallFlushInterval", "00:00:00.050");
        });
        using var client = app.CreateClient();
        client.DefaultRequestHeaders.Authorization = new("Bearer", await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin"));
        var pooled = await client.CreateActiveTenantAsync("meter-pool", "basic");
        var silo = await client.CreateActiveTenantAsync("meter-silo", "premium");
        await File.WriteAllBytesAsync(Path.Combine(_root.DataDir, "tenants", "meter-pool", "uploads", "blob.bin"), new byte[123_456]);
        for (var i = 0; i < 5; i++)
        {
            await client.GetJsonAsync($"/v1/tenants/meter-pool/plan");
        }

        decimal calls = 0, bytes = 0, siloSeconds = 0, poolSeconds = 0;
        for (var attempt = 0; attempt < 100 && (calls < 5 || bytes < 123_456 || siloSeconds <= 0); attempt++)
        {
            await Task.Delay(100);
            calls = await TotalAsync(client, pooled, "api_calls");
            bytes = await TotalAsync(client, pooled, "storage_bytes");
            siloSeconds = await TotalAsync(client, silo, "compute_seconds");
            poolSeconds = await TotalAsync(client, pooled, "compute_seconds");
        }

        Assert.True(calls >= 5, $"api_calls {calls}");
        Assert.True(bytes >= 123_456, $"storage_bytes {bytes}");
        Assert.True(siloSeconds > 0, "a dedicated (silo) instance is metered in compute_seconds");
        Assert.Equal(0m, poolSeconds); // a pooled tenant has no instance of its own
    }

    private static async Task<decimal> TotalAsync(HttpClient client, string tenant, string meter)
    {
        var usage = await client.GetJsonAsync($"/v1/usage?tenantId={tenant}&meter={meter}&window=month");
        return usage.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("value").GetDecimal()).DefaultIfEmpty(0).Sum();
    }

    public void Dispose() => _root.Dispose();
}
