using System.Globalization;
using Tenantry;
using Tenantry.AspNetCore;
using Tenantry.Data;
using MyTenantryApp;

var builder = WebApplication.CreateBuilder(args);

// Tenantry starts each instance with the port to listen on; the gateway, on this machine, is its only client.
if (builder.Configuration[TenantryEnvironment.Port] is { Length: > 0 } port)
{
    builder.WebHost.UseUrls($"http://127.0.0.1:{int.Parse(port, CultureInfo.InvariantCulture)}");
}

// Verifies the gateway's tenant context (TENANTRY_CONTEXT_JWKS; audience TENANTRY_APP; TENANTRY_TENANT_ID on a dedicated instance).
builder.Services.AddTenantryApp();

// The instance's database (TENANTRY_DATABASE): the pool behind the tenant filter, or a dedicated tenant's own.
builder.Services.AddTenantryData().AddTenantDatabase(builder.Configuration);

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();

// Before the endpoints: a request without this instance's tenant context gets 401 (or 403) and goes no further.
app.UseTenantResolution();

// Served without a tenant: it is in Tenantry:App:AnonymousPaths (default /healthz), and tenantry.app.json names it.
app.MapGet("/healthz", () => TypedResults.Ok(new Health("healthy", app.Configuration[TenantryEnvironment.Release])));

// The gateway forwards the app's requests with its route prefix (tenantry.app.json) kept in the path.
app.MapItemsApi("/tenantry-app-name");

app.Run();

/// <summary>What the health endpoint answers: the release this instance runs, when Tenantry started it.</summary>
internal sealed record Health(string Status, string? Release);
