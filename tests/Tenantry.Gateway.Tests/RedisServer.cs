using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>A private redis-server on a free loopback port (no persistence), for the tests that share limits through Redis.</summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? _process;

    public int Port { get; } = TenantryHost.FreePorts(1)[0];

    /// <summary>The <c>Tenantry:Gateway:Redis</c> value for this server.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    public ConnectionMultiplexer Connection { get; private set; } = null!;

    public async Task StartAsync()
    {
        var start = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            start.ArgumentList.Add(a);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start (apt-get install redis-server).");
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                Connection = await ConnectionMultiplexer.ConnectAsync($"{Configuration},connectTimeout=1000");
                await Connection.GetDatabase().PingAsync();
                return;
            }
            catch (RedisConnectionException) when (clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                Connection?.Dispose();
                await Task.Delay(100);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Connection is not null)
        {
            await Connection.DisposeAsync();
        }

        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
    }
}
