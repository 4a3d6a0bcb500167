using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

public sealed partial class CrashRecoveryTests
{
    /// <summary>
    /// The app each dedicated instance runs: a shell that runs the real app, unless a file
    /// <c>{DataDir}/hang-{slug}</c> exists; then it stays alive without ever answering (a hung start).
    /// </summary>
    private const string HangingWrapperScript = """
        owner=$(dirname "$TENANTRY_INSTANCE")
        if [ -e "$(dirname "$(dirname "$owner")")/hang-$(basename "$owner")" ]; then
          while :; do sleep 1; done
        fi
        exec "$@"
        """;

    [Fact]
    public async Task On_start_an_instance_that_hangs_does_not_hold_back_the_other_dedicated_instances()
    {
        output.WriteLine($"data dir {_dataDir}");
        string[] settings =
        [
            SampleApps.NoDefaultApp,
            "--Tenantry:Compute:FirstDedicatedPort=" + TenantryHost.FreePorts(1)[0].ToString(CultureInfo.InvariantCulture),
            // Far longer than the test waits: brought back one at a time, the others would wait this long behind the hung one.
            "--Tenantry:Compute:StartTimeout=00:05:00",
        ];
        // Brought back in slug order: the hung one comes first.
        const string hung = "aaa-hangs";
        string[] others = ["later-1", "later-2", "later-3"];
        try
        {
            var first = await StartHostAsync(settings);
            using (var client = await OperatorClientAsync(first))
            {
                await SampleApps.RegisterWrappedOrdersAsync(client, _dataDir, HangingWrapperScript);
                var ids = new List<string>();
                foreach (var slug in others.Prepend(hung))
                {
                    using var response = await client.CreateTenantAsync(new { name = slug, slug, tier = "premium", adminEmail = $"a@{slug}.test" });
                    Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
                    ids.Add((await response.JsonAsync()).GetProperty("id").GetString()!);
                }

                foreach (var id in ids)
                {
                    await client.WaitForStatusAsync(id, "active", seconds: 120);
                }
            }

            // A graceful stop stops the instances; the next start brings them back, and the first one hangs.
            var exit = first.Process.Terminate(TimeSpan.FromSeconds(40));
            Assert.True(exit == 0, $"SIGTERM: exit code {exit?.ToString(CultureInfo.InvariantCulture) ?? "none (still running)"}\n{_hostOutput.Tail(30)}");
            first.Dispose();
            _host = null;
            await File.WriteAllTextAsync(Path.Combine(_dataDir, "hang-" + hung), "");

            await StartHostAsync(settings);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var clock = Stopwatch.StartNew();
            var pending = others.ToList();
            while (pending.Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(90))
            {
                foreach (var slug in pending.ToList())
                {
                    if (await AnswersAsync(http, slug))
                    {
                        pending.Remove(slug);
                    }
                }

                await Task.Delay(200);
            }

            Assert.True(pending.Count == 0, $"Not brought back while {hung} hung: {string.Join(", ", pending)}\n{_hostOutput.Tail(30)}");
            Assert.False(await AnswersAsync(http, hung), "The hung instance answered.");
            Assert.Equal(0, _hostOutput.Count(_sessions, "Could not bring back"));
            _passed = true;
        }
        finally
        {
            foreach (var slug in others.Append(hung))
            {
                var pidFile = Path.Combine(_dataDir, "compute", slug, "orders@1.0.0", "app.pid");
                if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out var pid) && LocalProcesses.IsRunning(pid, _dataDir))
                {
                    LocalProcesses.Signal(pid, LocalProcesses.SigKill);
                }
            }
        }
    }

    /// <summary>True when the tenant's dedicated instance answers its health probe.</summary>
    private async Task<bool> AnswersAsync(HttpClient http, string slug)
    {
        using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(_dataDir, "compute", slug, "orders@1.0.0", "instance.json")));
        try
        {
            using var response = await http.GetAsync(new Uri(new Uri(manifest.RootElement.GetProperty("upstream").GetString()!), "/healthz"));
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
    }
}
