using System.Net.Http.Json;

namespace Tenantry.Testing;

/// <summary>The bundled sample app (Orders.Api, built next to the host) as tests register it themselves.</summary>
public static class SampleApps
{
    /// <summary>The sample's entry assembly, next to the host's.</summary>
    public static string OrdersDll => Path.Combine(Path.GetDirectoryName(TenantryHost.HostDll)!, "samples", "orders", "Orders.Api.dll");

    /// <summary>The sample's folder in the host project's own build output (its dll and its <c>migrations</c> folder), for tests whose output lacks it.</summary>
    public static string BuiltOrdersFolder => Path.GetFullPath(Path.Combine(
        AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src", "Tenantry.Host", "bin",
        new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name, "net10.0", "samples", "orders"));

    /// <summary>The host setting that leaves a new data directory without the default app, for tests that register their own.</summary>
    public const string NoDefaultApp = "--Tenantry:Apps:RegisterSample=false";

    /// <summary>
    /// Registers the sample as app <c>orders</c> (prefix <c>/</c>) with release 1.0.0, whose process is
    /// <c>/bin/sh -c {script} app-wrapper dotnet Orders.Api.dll --Tenantry:App:DataDir={dataDir}</c>:
    /// the script runs the real app with <c>"$@"</c>. It finds its instance folder in <c>$TENANTRY_INSTANCE</c>
    /// (<c>{dataDir}/compute/{owner}/orders@1.0.0</c>).
    /// </summary>
    public static async Task RegisterWrappedOrdersAsync(HttpClient operatorClient, string dataDir, string script)
    {
        ArgumentNullException.ThrowIfNull(operatorClient);
        using (var app = await operatorClient.PostAsJsonAsync("/v1/apps", new { name = "orders", routePrefix = "/", healthPath = "/healthz" }))
        {
            app.EnsureSuccessStatusCode();
        }

        using var release = await operatorClient.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version = "1.0.0",
            process = new
            {
                command = "/bin/sh",
                args = new[] { "-c", script, "app-wrapper", TenantryHost.DotnetPath(), OrdersDll, "--Tenantry:App:DataDir=" + Path.GetFullPath(dataDir) },
                workingDirectory = Path.GetDirectoryName(OrdersDll),
            },
        });
        if (!release.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Registering the wrapped sample failed: {(int)release.StatusCode} {await release.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>Registers the sample as app <c>orders</c> 1.0.0 with its SQL migrations, as the host does on a new data directory.</summary>
    public static async Task RegisterOrdersAsync(HttpClient operatorClient)
    {
        ArgumentNullException.ThrowIfNull(operatorClient);
        using (var app = await operatorClient.PostAsJsonAsync("/v1/apps", new { name = "orders", routePrefix = "/", healthPath = "/healthz" }))
        {
            app.EnsureSuccessStatusCode();
        }

        var folder = Path.GetDirectoryName(OrdersDll)!;
        using var release = await operatorClient.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version = "1.0.0",
            process = new { command = TenantryHost.DotnetPath(), args = new[] { OrdersDll }, workingDirectory = folder },
            migrationsPath = Path.Combine(folder, "migrations"),
        });
        if (!release.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Registering the sample failed: {(int)release.StatusCode} {await release.Content.ReadAsStringAsync()}");
        }
    }
}
