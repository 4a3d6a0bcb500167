using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>Dedicated instances across a host crash and through a silo tenant's lifecycle (own host, not shared with other tests).</summary>
public sealed class SiloComputeTests
{
    [Fact]
    public async Task A_dedicated_instance_survives_a_host_crash_is_adopted_and_stops_at_offboarding()
    {
        var first = await TenantryHost.StartAsync(TenantryHostOptions.Platform());
        TenantryHost? second = null;
        try
        {
            using var op = await first.OperatorClientAsync();
            var silo = await first.OnboardAsync(op, "vault", "premium");
            using (var client = silo.Client())
            {
                using var order = await client.PostAsJsonAsync("/orders", new { amount = 99m, note = "before crash" });
                Assert.Equal(HttpStatusCode.Created, order.StatusCode);
            }

            int pid;
            using (var client = silo.Client())
            {
                pid = (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();
            }

            first.Kill(entireProcessTree: false);
            Assert.True(TenantryHost.IsInstance(pid, first.DataDir), "The dedicated instance died with the host.");

            second = await TenantryHost.StartAsync(TenantryHostOptions.Platform() with { DataDir = first.DataDir, Ports = first.Ports });
            using var op2 = await second.OperatorClientAsync();
            var tenant = silo with { Host = second };
            using (var client = tenant.Client())
            {
                var clock = Stopwatch.StartNew();
                JsonElement instance = default;
                while (clock.Elapsed < TimeSpan.FromSeconds(30))
                {
                    using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
                    if (response.IsSuccessStatusCode)
                    {
                        instance = await response.Content.ReadFromJsonAsync<JsonElement>();
                        break;
                    }

                    await Task.Delay(100);
                }

                Assert.Equal(pid, instance.GetProperty("processId").GetInt32());
                var orders = await client.GetFromJsonAsync<JsonElement>("/orders");
                Assert.Contains(orders.GetProperty("items").EnumerateArray(), o => o.GetProperty("note").GetString() == "before crash");
            }

            // The adopted instance is supervised like one the host started: killed, it comes back.
            using (var process = Process.GetProcessById(pid))
            {
                process.Kill();
                await process.WaitForExitAsync();
            }

            var restarted = await WaitForNewInstanceAsync(tenant, pid);
            Assert.NotEqual(pid, restarted);

            using (var offboard = await op2.DeleteAsync(new Uri($"/v1/tenants/{tenant.Id}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.Accepted, offboard.StatusCode);
            }

            await TenantryHost.WaitForStatusAsync(op2, tenant.Id.ToString(), "offboarded");
            Assert.False(TenantryHost.IsInstance(restarted, first.DataDir), "The dedicated instance outlived offboarding.");
            using (var client = tenant.Client())
            {
                // The gateway learns of it at its next routing-table reload (every second): within seconds, not at once.
                var clock = Stopwatch.StartNew();
                var status = HttpStatusCode.OK;
                while (clock.Elapsed < TimeSpan.FromSeconds(10))
                {
                    using var refused = await client.GetAsync(new Uri("/orders", UriKind.Relative));
                    status = refused.StatusCode;
                    Assert.NotEqual(HttpStatusCode.OK, status);
                    if (status == HttpStatusCode.Forbidden)
                    {
                        break;
                    }

                    await Task.Delay(100);
                }

                Assert.Equal(HttpStatusCode.Forbidden, status);
            }
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

    private static async Task<int> WaitForNewInstanceAsync(TenantHandle tenant, int old)
    {
        using var client = tenant.Client();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
            if (response.IsSuccessStatusCode)
            {
                var pid = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32();
                if (pid != old)
                {
                    return pid;
                }
            }

            await Task.Delay(100);
        }

        Assert.Fail("The dedicated instance was not started again.");
        return 0;
    }
}
