using System.Net.Http.Json;
using System.Text.Json;

namespace Tenantry.Gateway.Tests;

/// <summary>One real host for the gateway tests, with tenants of every kind onboarded through the API.</summary>
public sealed class PlatformFixture : IAsyncLifetime
{
    public PlatformHost Host { get; } = new();

    public HttpClient Operator { get; private set; } = null!;

    /// <summary>basic (pool, shared instance).</summary>
    public TenantHandle Acme { get; private set; } = null!;

    /// <summary>basic (pool), another tenant on the same shared instance and pool file.</summary>
    public TenantHandle Bravo { get; private set; } = null!;

    /// <summary>standard (bridge: own database file, shared instance).</summary>
    public TenantHandle Bolt { get; private set; } = null!;

    /// <summary>premium (silo: own database file, dedicated process).</summary>
    public TenantHandle Mega { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Host.StartAsync();
        Operator = await Host.OperatorAsync();
        var onboarding = new[]
        {
            Host.OnboardAsync(Operator, "acme", "basic"),
            Host.OnboardAsync(Operator, "bravo", "basic"),
            Host.OnboardAsync(Operator, "bolt", "standard"),
            Host.OnboardAsync(Operator, "mega", "premium"),
        };
        var tenants = await Task.WhenAll(onboarding);
        (Acme, Bravo, Bolt, Mega) = (tenants[0], tenants[1], tenants[2], tenants[3]);
    }

    public async Task<JsonElement> TenantAsync(string id) =>
        await Operator.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative));

    public async Task DisposeAsync()
    {
        Operator?.Dispose();
        await Host.DisposeAsync();
    }
}
