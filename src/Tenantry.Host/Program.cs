using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Telemetry;
using Tenantry.Host;

if (args.Any(a => a is "--help" or "-h" or "-?"))
{
    Console.WriteLine(HostHelp.Text);
    return 0;
}

// A silo tenant's dedicated Orders.Api instance: this program again, started by the local compute provider.
if (args.FirstOrDefault() == ApplicationPlane.AppCommand)
{
    await Orders.Api.OrdersApp.Build(args[1..]).RunAsync();
    return 0;
}

// One more gateway replica, apart from the control plane (routing table over HTTP, limits shared through Redis).
if (args.FirstOrDefault() == GatewayReplica.Command)
{
    try
    {
        await GatewayReplica.Build(args[1..]).RunAsync();
        return 0;
    }
    catch (OptionsValidationException ex)
    {
        return InvalidConfiguration(ex);
    }
}

// Content root = the app folder, so appsettings.json is found wherever the host is started from.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.AddCommandLine(args, HostHelp.SwitchMappings);
// The tenant app this host runs is Orders.Api: its schema is the one the control plane applies to
// every tenant database at onboarding and in fleet migrations (POST /v1/migrations).
builder.Services.AddSingleton(Orders.Api.OrdersSchema.Schema);
builder.Services.AddTenantryControlPlane();
builder.AddTenantryTelemetry("tenantry", scrapeEndpoint: true);
builder.AddApplicationPlane();
var settings = builder.Configuration.GetSection(TenantryOptions.Section).Get<TenantryOptions>() ?? new TenantryOptions();
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, settings.Ports.ControlPlane));

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseAuthentication();
app.UseAuthorization();
app.MapTenantryControlPlane();
app.MapTenantryMetrics();
app.Lifetime.ApplicationStarted.Register(() =>
{
    var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
    var options = app.Services.GetRequiredService<IOptions<TenantryOptions>>().Value;
    Console.WriteLine(HostHelp.Banner(addresses?.FirstOrDefault() ?? "?", options));
});

try
{
    await app.RunAsync();
    return 0;
}
catch (OptionsValidationException ex)
{
    return InvalidConfiguration(ex);
}
catch (InvalidOperationException ex) when (ex.Message.StartsWith("Another Tenantry host", StringComparison.Ordinal))
{
    Console.Error.WriteLine(ex.Message);
    return 3;
}
catch (IOException ex) when (ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
{
    Console.Error.WriteLine($"Tenantry cannot listen on port {settings.Ports.ControlPlane}: it is in use. Start with --port <other port>.");
    return 4;
}

static int InvalidConfiguration(OptionsValidationException ex)
{
    Console.Error.WriteLine("Tenantry cannot start, the configuration is not valid:");
    foreach (var failure in ex.Failures)
    {
        Console.Error.WriteLine("  - " + failure);
    }

    return 2;
}

/// <summary>Exposed for WebApplicationFactory in the tests.</summary>
public partial class Program;
