using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Mvc.Testing;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Events;

/// <summary>
/// A real SMTP server from Debian (python3-aiosmtpd, its debugging handler prints every message it
/// receives), started as a child process on a free loopback port and stopped by its PID.
/// </summary>
public sealed class SmtpServer : IAsyncLifetime
{
    private Process? _process;

    public int Port { get; } = TenantryHost.FreePorts(1)[0];

    /// <summary>What the server printed: each received message, headers and body.</summary>
    public ConcurrentQueue<string> Lines { get; } = new();

    public string Text => string.Join('\n', Lines);

    public async Task InitializeAsync()
    {
        var start = new ProcessStartInfo("/usr/bin/python3", ["-u", "-m", "aiosmtpd", "-n", "-l", $"127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        _process = Process.Start(start) ?? throw new InvalidOperationException("python3 -m aiosmtpd did not start (apt-get install python3-aiosmtpd).");
        _process.OutputDataReceived += (_, e) => Lines.Enqueue(e.Data ?? "");
        _process.ErrorDataReceived += (_, e) => Lines.Enqueue("stderr: " + e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        throw new InvalidOperationException($"aiosmtpd did not listen on {Port}: {Text}");
    }

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }

        _process?.Dispose();
        return Task.CompletedTask;
    }
}

public sealed partial class SmtpMailTests(SmtpServer smtp) : IClassFixture<SmtpServer>, IDisposable
{
    private readonly TenantryFactory _factory = new();

    [GeneratedRegex(@"https?://\S+/invite/(?<token>[A-Za-z0-9_\-]+)")]
    private static partial Regex InviteLink();

    [Fact]
    public async Task A_real_smtp_server_receives_the_welcome_mail_and_its_link_works_once()
    {
        _factory.Settings["Tenantry:Mail:Smtp:Host"] = "127.0.0.1";
        _factory.Settings["Tenantry:Mail:Smtp:Port"] = smtp.Port.ToString(CultureInfo.InvariantCulture);
        _factory.Settings["Tenantry:Mail:Smtp:UseTls"] = "false";
        _factory.Settings["Tenantry:Mail:Smtp:From"] = "Tenantry <onboarding@tenantry.test>";
        using var client = await _factory.OperatorAsync();
        var tenant = await client.CreateActiveTenantAsync("smtp-co");

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!smtp.Text.Contains("/invite/", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        var received = smtp.Text;
        Assert.Contains("Subject: Welcome to Tenantry, Tenant smtp-co", received, StringComparison.Ordinal);
        Assert.Contains("To: admin@smtp-co.test", received, StringComparison.Ordinal);
        Assert.Contains("From: Tenantry <onboarding@tenantry.test>", received, StringComparison.Ordinal);
        var token = InviteLink().Match(received).Groups["token"].Value;
        Assert.False(string.IsNullOrEmpty(token), received);

        JsonElement mail = default;
        for (var i = 0; i < 100 && mail.ValueKind == JsonValueKind.Undefined; i++)
        {
            mail = (await client.GetJsonAsync($"/v1/mails?tenantId={tenant}")).GetProperty("items").EnumerateArray()
                .FirstOrDefault(m => m.GetProperty("status").GetString() == "sent");
            await Task.Delay(50);
        }

        Assert.Equal("smtp", mail.GetProperty("transport").GetString());
        Assert.Equal($"127.0.0.1:{smtp.Port} OK", mail.GetProperty("location").GetString());
        Assert.False(Directory.Exists(Path.Combine(_factory.DataDir, "mail")));

        var browser = _factory.CreateClient(new WebApplicationFactoryClientOptions { HandleCookies = true });
        await InvitationTests.SetPasswordAsync(browser, token, "smtp admin's secret");
        using var second = await browser.GetAsync(new Uri($"/invite/{token}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Gone, second.StatusCode);
    }

    public void Dispose() => _factory.Dispose();
}
