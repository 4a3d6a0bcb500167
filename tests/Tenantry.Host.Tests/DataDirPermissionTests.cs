using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.Host.Tests;

/// <summary>
/// Everything a real host writes into its data dir (control.db and its -wal/-shm, keys, secrets,
/// tenant databases and folders, mails, exports, compute manifests, logs) is its user's alone.
/// </summary>
public sealed class DataDirPermissionTests(ITestOutputHelper output) : IDisposable
{
    private const string OperatorSecret = "permission-tests-operator-secret-0123";
    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-permission-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task After_onboarding_every_tier_and_an_offboarding_nothing_in_the_data_dir_is_open_to_group_or_others()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes.
        }

        var ports = TenantryHost.FreePorts(3);
        var lines = new ConcurrentQueue<string>();
        using var host = TenantryHost.Start(
            [
                "--data-dir", _dataDir,
                "--port", ports[0].ToString(CultureInfo.InvariantCulture),
                "--gateway-port", ports[1].ToString(CultureInfo.InvariantCulture),
                $"--Tenantry:Ports:SharedApp={ports[2]}",
                "--operator-secret", OperatorSecret,
            ],
            lines.Enqueue);
        var baseAddress = new Uri($"http://127.0.0.1:{ports[0]}");
        var failure = await host.WaitHealthyAsync(TimeSpan.FromSeconds(60), baseAddress);
        Assert.True(failure is null, $"{failure}\n{string.Join("\n", lines.TakeLast(30))}");

        using var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryHost.OperatorTokenAsync(client, OperatorSecret));
        var ids = new List<string>();
        foreach (var tier in new[] { "basic", "standard", "premium" })
        {
            using var created = await client.CreateTenantAsync(new { name = $"Perm {tier}", slug = $"perm-{tier}", tier, adminEmail = $"admin@{tier}.test" });
            Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
            ids.Add((await created.JsonAsync()).GetProperty("id").GetString()!);
        }

        foreach (var id in ids)
        {
            await client.WaitForStatusAsync(id, "active", seconds: 90);
        }

        using (var deleted = await client.DeleteAsync(new Uri($"/v1/tenants/{ids[0]}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Accepted, deleted.StatusCode);
        }

        await client.WaitForStatusAsync(ids[0], "offboarded", seconds: 60);

        var open = new List<string>();
        var seen = 0;
        foreach (var entry in new DirectoryInfo(_dataDir).EnumerateFileSystemInfos("*", SearchOption.AllDirectories).Prepend(new DirectoryInfo(_dataDir)))
        {
            seen++;
            if ((entry.UnixFileMode & GroupOrOther) != 0)
            {
                open.Add($"{Convert.ToString((int)entry.UnixFileMode, 8)} {Path.GetRelativePath(_dataDir, entry.FullName)}");
            }
        }

        output.WriteLine($"{seen} entries checked:\n" + string.Join("\n", Directory.EnumerateFileSystemEntries(_dataDir, "*", SearchOption.AllDirectories).Select(e => Path.GetRelativePath(_dataDir, e))));
        Assert.True(seen > 20, $"only {seen} entries in the data dir");
        Assert.Contains(Directory.EnumerateFiles(_dataDir, "*", SearchOption.AllDirectories), f => f.EndsWith("control.db-wal", StringComparison.Ordinal));
        Assert.Contains(Directory.EnumerateFiles(_dataDir, "*.zip", SearchOption.AllDirectories), _ => true);
        Assert.True(open.Count == 0, "open to group or others:\n" + string.Join("\n", open));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
