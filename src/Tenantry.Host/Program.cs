using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Tenantry;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Telemetry;
using Tenantry.Host;

if (args.Any(a => a is "--help" or "-h" or "-?"))
{
    Console.WriteLine(HostHelp.Text);
    return 0;
}

HostStartup.RestrictNewFiles();
var ports = new PortOptions();
try
{
    // One more gateway replica, apart from the control plane (routing table over HTTP, limits shared through Redis).
    if (args.FirstOrDefault() == GatewayReplica.Command)
    {
        var replica = GatewayReplica.Build(args[1..]);
        replica.Lifetime.ApplicationStarted.Register(HostStartup.Started);
        await replica.RunAsync();
        return 0;
    }

    // Content root = the app folder, so appsettings.json is found wherever the host is started from.
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.Configuration.AddCommandLine(args, HostHelp.SwitchMappings);
    builder.Logging.QuietStartFailures();
    var settings = builder.Configuration.GetSection(TenantryOptions.Section).Get<TenantryOptions>() ?? new TenantryOptions();
    ports = settings.Ports;
    if (SettingProblems.Find(settings, TenantryOptions.Section) is { Count: > 0 } problems)
    {
        throw new OptionsValidationException(TenantryOptions.Section, typeof(TenantryOptions), problems);
    }

    builder.Services.AddTenantryControlPlane();
    builder.AddTenantryTelemetry("tenantry", scrapeEndpoint: true);
    builder.AddApplicationPlane();
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(settings.ListenIp, settings.Ports.ControlPlane));

    var app = builder.Build();
    app.UseExceptionHandler();
    app.UseStatusCodePages();
    app.UseAuthentication();
    app.UseAuthorization();
    app.MapTenantryControlPlane();
    app.MapTenantryMetrics();
    app.Lifetime.ApplicationStarted.Register(() =>
    {
        HostStartup.Started();
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
        var options = app.Services.GetRequiredService<IOptions<TenantryOptions>>().Value;
        Console.WriteLine(HostHelp.Banner(addresses?.FirstOrDefault() ?? "?", options));
    });

    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (HostStartup.Explain(ex, ports) is { } failure)
{
    Console.Error.WriteLine(failure.Message);
    return failure.ExitCode;
}

/// <summary>Exposed for WebApplicationFactory in the tests.</summary>
public partial class Program;
