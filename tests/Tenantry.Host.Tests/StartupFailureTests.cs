using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Tenantry.ControlPlane;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>
/// A host started with a value that cannot work stops with one plain line on stderr naming the
/// setting, an exit code for the kind of problem, and no stack trace on either stream.
/// </summary>
public sealed class StartupFailureTests : IDisposable
{
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(60);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tenantry-startup-tests", Guid.NewGuid().ToString("N"));

    public StartupFailureTests() => Directory.CreateDirectory(_root);

    public static TheoryData<string[], string, string> BadSettings => new()
    {
        { ["--port", "abc"], "Tenantry:Ports:ControlPlane", "'abc' is not a whole number" },
        { ["--port", "70000"], "Tenantry:Ports:ControlPlane", "70000 is not between 0 and 65535" },
        { ["--gateway-port", "-1"], "Tenantry:Ports:Gateway", "-1 is not between" },
        { ["--Tenantry:Operations:RetryDelay=soon"], "Tenantry:Operations:RetryDelay", "'soon' is not a time span" },
        { ["--Tenantry:Operations:MaxParallel=-1"], "Tenantry:Operations:MaxParallel", "-1 is not between 1 and 64" },
        { ["--Tenantry:Operations:MaxParallel=0"], "Tenantry:Operations:MaxParallel", "0 is not between 1 and 64" },
        { ["--Tenantry:Operations:Lease=00:00:04", "--Tenantry:Operations:LeaseRenewal=00:00:03"], "Tenantry:Operations:LeaseRenewal", "half" },
        { ["--Tenantry:ApplicationPlane:Enabled=maybe"], "Tenantry:ApplicationPlane:Enabled", "'maybe' is not true or false" },
        { ["--Tenantry:Keys:RotateEvery=weekly"], "Tenantry:Keys:RotateEvery", "'weekly' is not a time span" },
        { ["--Tenantry:Keys:RotateEvery=00:00:10"], "Tenantry:Keys:RotateEvery", "is not between" },
        { ["--Tenantry:Gateway:RefreshInterval=00:00:00"], "Tenantry:Gateway:RefreshInterval", "is not between" },
        { ["--Tenantry:Compute:FirstDedicatedPort=80"], "Tenantry:Compute:FirstDedicatedPort", "80 is not between" },
        { ["--Tenantry:Node:HeartbeatInterval=00:00:00.010"], "Tenantry:Node:HeartbeatInterval", "is not between" },
        { ["--Tenantry:Node:DeadAfter=later"], "Tenantry:Node:DeadAfter", "'later' is not a time span" },
        { ["--Tenantry:Node:HeartbeatInterval=00:00:02", "--Tenantry:Node:DeadAfter=00:00:03"], "Tenantry:Node:DeadAfter", "at least twice" },
        { ["--Tenantry:Node:Capacity=0"], "Tenantry:Node:Capacity", "0 is not between" },
        { ["--Tenantry:Node:Address=http://10.0.0.1:80"], "Tenantry:Node:Address", "without scheme or port" },
        { ["--Tenantry:Telemetry:OtlpEndpoint=collector:4318"], "Tenantry:Telemetry:OtlpEndpoint", "'collector:4318' is not an absolute http(s) URI" },
        { ["--Tenantry:Billing:MaxBatch=lots"], "Tenantry:Billing:MaxBatch", "'lots' is not a whole number" },
        { ["--Tenantry:Costs:PriceBook:DatabaseMonth=-1"], "Tenantry:Costs:PriceBook:DatabaseMonth", "-1 is not between 0 and" },
        { ["--Tenantry:Costs:PriceBook:VcpuHours=0.04"], "Tenantry:Costs:PriceBook:VcpuHours", "unknown setting" },
        { ["--Tenantry:Postgres:Servers:0:Capacity=0", "--Tenantry:Postgres:Servers:0:ConnectionString=Host=127.0.0.1"], "Tenantry:Postgres:Servers:0:Capacity", "0 is not between" },
        { ["--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=EU"], "Tenantry:Cells:0:Region", "'EU' is not a region name" },
        { ["--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=eu", "--Tenantry:Cells:0:Capacity=lots"], "Tenantry:Cells:0:Capacity", "'lots' is not a whole number" },
        { ["--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=eu", "--Tenantry:Cells:1:Name=eu-1", "--Tenantry:Cells:1:Region=eu"], "Tenantry:Cells:1:Name", "configured twice" },
        { ["--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=eu", "--Tenantry:Cells:0:PostgresServers:0=pg-nowhere"], "Tenantry:Cells:0:PostgresServers:0", "'pg-nowhere' is not a server" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void A_bad_setting_exits_2_with_one_line_naming_its_key(string[] arguments, string key, string says)
    {
        var (code, errors, all) = Run(arguments);
        Assert.True(code == 2, $"exit {code}\n{all}");
        var line = Assert.Single(errors);
        Assert.StartsWith(key + ":", line, StringComparison.Ordinal);
        Assert.Contains(says, line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
    }

    [Fact]
    public void A_store_where_nothing_listens_exits_5_naming_Tenantry_Store()
    {
        var port = TenantryHost.FreePorts(1)[0];
        var (code, errors, all) = Run([$"--Tenantry:Store=Host=127.0.0.1;Port={port};Username=tenantry;Password=secret;Database=tenantry", "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey]);
        Assert.True(code == 5, $"exit {code}\n{all}");
        var line = Assert.Single(errors);
        Assert.StartsWith("Tenantry:Store:", line, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
    }

    [Fact]
    public void A_data_dir_that_cannot_be_created_exits_6_naming_Tenantry_DataDir()
    {
        var file = Path.Combine(_root, "a-file");
        File.WriteAllText(file, "not a folder");
        var (code, errors, all) = Run([], dataDir: Path.Combine(file, "data"));
        Assert.True(code == 6, $"exit {code}\n{all}");
        var line = Assert.Single(errors);
        Assert.StartsWith("Tenantry:DataDir:", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--port", "Tenantry:Ports:ControlPlane")]
    [InlineData("--gateway-port", "Tenantry:Ports:Gateway")]
    public void A_port_in_use_exits_4_naming_the_switch_that_moves_it(string flag, string key)
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture);
        var (code, errors, all) = Run([flag, port]);
        Assert.True(code == 4, $"exit {code}\n{all}");
        var line = Assert.Single(errors);
        Assert.StartsWith(key + ":", line, StringComparison.Ordinal);
        Assert.Contains($"port {port} is in use", line, StringComparison.Ordinal);
        Assert.Contains(flag + " <other port>", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SocketError.AccessDenied)]
    [InlineData(SocketError.AddressAlreadyInUse)]
    public void A_privileged_or_taken_port_is_explained_with_its_switch(SocketError error)
    {
        var ports = new PortOptions { ControlPlane = 80, Gateway = 81 };
        var bind = new IOException("Failed to bind to address http://127.0.0.1:81.", new SocketException((int)error));

        var failure = HostStartup.Explain(new AggregateException(bind), ports);

        Assert.NotNull(failure);
        Assert.Equal(ExitCodes.PortUnavailable, failure.ExitCode);
        Assert.StartsWith("Tenantry:Ports:Gateway: port 81 ", failure.Message, StringComparison.Ordinal);
        Assert.Contains(error == SocketError.AccessDenied ? "needs privileges" : "is in use", failure.Message, StringComparison.Ordinal);
        Assert.Contains("--gateway-port", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_lists_the_exit_codes()
    {
        foreach (var code in new[] { ExitCodes.BadSetting, ExitCodes.DataDirectoryInUse, ExitCodes.PortUnavailable, ExitCodes.StoreUnreachable, ExitCodes.DataDirectoryNotWritable })
        {
            Assert.Contains($"  {code}  ", HostHelp.Text, StringComparison.Ordinal);
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private (int? Code, List<string> Errors, string All) Run(string[] arguments, string? dataDir = null)
    {
        var ports = TenantryHost.FreePorts(3);
        var lines = new ConcurrentQueue<string>();
        string[] defaults =
        [
            "--data-dir", dataDir ?? Path.Combine(_root, "data"),
            "--port", ports[0].ToString(CultureInfo.InvariantCulture),
            "--gateway-port", ports[1].ToString(CultureInfo.InvariantCulture),
            $"--Tenantry:Ports:SharedApp={ports[2]}",
        ];
        using var host = TenantryHost.Start([.. defaults, .. arguments], lines.Enqueue);
        var code = host.WaitForExit(ExitTimeout);
        var errors = lines.Where(l => l.StartsWith("stderr: ", StringComparison.Ordinal)).Select(l => l["stderr: ".Length..]).Where(l => l.Length > 0).ToList();
        return (code, errors, string.Join("\n", lines));
    }
}
