using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Tenantry.Testing;

public sealed partial class TenantryHost
{
    private static TenantryHost StartInProcess(TenantryHostOptions options, string dataDir, bool deleteDataDir)
    {
        if (options.Environment.Count > 0 || options.Output is not null)
        {
            throw new NotSupportedException("A host in the test process takes settings only.");
        }

        var portCount = options.ApplicationPlane ? 4 : 1;
        for (var attempt = 1; ; attempt++)
        {
            var ports = options.Ports?.Take(portCount).ToArray() ?? FreePorts(portCount);
            List<KeyValuePair<string, string?>> settings =
            [
                new("Tenantry:DataDir", dataDir),
                new("Tenantry:OperatorSecret", options.OperatorSecret),
                new("Tenantry:Ports:ControlPlane", Text(ports[0])),
            ];
            if (options.ApplicationPlane)
            {
                // The gateway in this process, the app instances as processes of their own, each on a free port.
                settings.Add(new("Tenantry:Ports:Gateway", Text(ports[1])));
                settings.Add(new("Tenantry:Ports:SharedApp", Text(ports[2])));
                settings.Add(new("Tenantry:Compute:FirstDedicatedPort", Text(ports[3])));
            }
            else
            {
                // The gateway and shared app would bind fixed ports shared by parallel tests.
                settings.Add(new("Tenantry:ApplicationPlane:Enabled", "false"));
            }
            if (options.Store is not null)
            {
                settings.Add(new("Tenantry:Store", options.Store));
                settings.Add(new("Tenantry:MasterKey", TenantryHostOptions.TestMasterKey));
            }

            settings.AddRange(options.Settings.Select(Setting));
            var host = new InProcessHost(settings);
            try
            {
                host.Start();
                return new TenantryHost(host, dataDir, ownsDataDir: options.DataDir is null, deleteDataDir, options.OperatorSecret, ports, options.ApplicationPlane);
            }
            catch (IOException) when (options.Ports is null && attempt < StartAttempts)
            {
                // The port was taken between picking it and binding it; try another.
                host.Dispose();
            }
            catch
            {
                host.Dispose();
                throw;
            }
        }
    }

    /// <summary>The host's services (a test-only hook, a store to look into); only when it runs in the test process.</summary>
    public IServiceProvider Services => _inProcess?.Services ?? throw new InvalidOperationException("This host runs in a process of its own.");

    /// <summary><c>--Key=value</c> as a configuration entry; the host's short options (<c>--port 80</c>) need a process.</summary>
    private static KeyValuePair<string, string?> Setting(string argument)
    {
        var equals = argument.IndexOf('=', StringComparison.Ordinal);
        if (!argument.StartsWith("--", StringComparison.Ordinal) || equals < 3)
        {
            throw new ArgumentException($"'{argument}' is not --Key=value; a host in the test process takes settings only.", nameof(argument));
        }

        return new(argument[2..equals], argument[(equals + 1)..]);
    }

    /// <summary>The host's own Program on a real Kestrel port in this process.</summary>
    private sealed class InProcessHost(IReadOnlyList<KeyValuePair<string, string?>> settings) : WebApplicationFactory<Program>
    {
        public void Start()
        {
            UseKestrel();
            StartServer();
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
        }
    }
}
