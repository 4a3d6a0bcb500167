using System.Globalization;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

public sealed partial class CrashRecoveryTests
{
    [Fact]
    public async Task Sigterm_mid_operation_exits_cleanly_and_the_work_resumes_at_next_start()
    {
        output.WriteLine($"data dir {_dataDir}");
        var host = await StartHostAsync();
        var ids = new List<string>();
        using (var client = await OperatorClientAsync(host))
        {
            for (var i = 0; i < 12; i++)
            {
                using var response = await client.CreateTenantAsync(new { name = $"Term {i}", slug = $"term-{i}", tier = Tiers[i % Tiers.Length], adminEmail = $"a@term{i}.test" });
                Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
                ids.Add((await response.JsonAsync()).GetProperty("id").GetString()!);
            }
        }

        var exit = host.Process.Terminate(TimeSpan.FromSeconds(40));
        Assert.True(exit == 0, $"SIGTERM: exit code {exit?.ToString(CultureInfo.InvariantCulture) ?? "none (still running)"}\n{_hostOutput.Tail(30)}");
        host.Dispose();
        _host = null;

        var again = await StartHostAsync();
        using (var client = await OperatorClientAsync(again))
        {
            foreach (var id in ids)
            {
                await client.WaitForStatusAsync(id, "active", seconds: 30);
            }
        }

        _passed = true;
    }
}
