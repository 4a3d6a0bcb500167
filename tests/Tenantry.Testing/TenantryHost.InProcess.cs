using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Tenantry.Testing;

public sealed partial class TenantryHost
{
    private static TenantryHost StartInProcess(TenantryHostOptions options, string dataDir, bool deleteDataDir)
    {
        if (options.ApplicationPlane || options.Environment.Count > 0 || options.Output is not null)
        {
            throw new NotSupportedException("A host in the test process runs the control plane alone and takes settings only.");
        }

        for (var attempt = 1; ; attempt++)
        {
            var port = options.Ports?[0] ?? FreePorts(1)[0];
            List<KeyValuePair<string, string?>> settings =
            [
                new("Tenantry:DataDir", dataDir),
                new("Tenantry:OperatorSecret", options.OperatorSecret),
                new("Tenantry:Ports:ControlPlane", Text(port)),
                // The gateway and shared app would bind fixed ports shared by parallel tests.
                new("Tenantry:ApplicationPlane:Enabled", "false"),
            ];
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
                return new TenantryHost(host, dataDir, deleteDataDir, options.OperatorSecret, port);
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
