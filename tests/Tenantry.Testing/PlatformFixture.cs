using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace Tenantry.Testing;

/// <summary>One real host with the whole platform (<see cref="TenantryHostOptions.Platform"/>), with tenants of every kind onboarded through the API.</summary>
public class PlatformFixture : IAsyncLifetime
{
    private readonly bool _withSilo;
    private TenantHandle? _mega;

    public PlatformFixture()
        : this(withSilo: true)
    {
    }

    /// <param name="withSilo">False leaves out <see cref="Mega"/> (no dedicated process to start).</param>
    protected PlatformFixture(bool withSilo) => _withSilo = withSilo;

    public TenantryHost Host { get; private set; } = null!;

    public HttpClient Operator { get; private set; } = null!;

    /// <summary>basic (pool, shared instance).</summary>
    public TenantHandle Acme { get; private set; } = null!;

    /// <summary>basic (pool), another tenant on the same shared instance and pool file.</summary>
    public TenantHandle Bravo { get; private set; } = null!;

    /// <summary>standard (bridge: own database file, shared instance).</summary>
    public TenantHandle Bolt { get; private set; } = null!;

    /// <summary>premium (silo: own database file, dedicated process).</summary>
    public TenantHandle Mega => _mega ?? throw new InvalidOperationException("This platform has no silo tenant.");

    public async Task InitializeAsync()
    {
        Host = await TenantryHost.StartAsync(TenantryHostOptions.Platform());
        Operator = await Host.OperatorClientAsync();
        List<Task<TenantHandle>> onboarding =
        [
            Host.OnboardAsync(Operator, "acme", "basic"),
            Host.OnboardAsync(Operator, "bravo", "basic"),
            Host.OnboardAsync(Operator, "bolt", "standard"),
        ];
        if (_withSilo)
        {
            onboarding.Add(Host.OnboardAsync(Operator, "mega", "premium"));
        }

        var tenants = await Task.WhenAll(onboarding);
        (Acme, Bravo, Bolt) = (tenants[0], tenants[1], tenants[2]);
        _mega = _withSilo ? tenants[3] : null;
    }

    public async Task<JsonElement> TenantAsync(string id) =>
        await Operator.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative));

    public async Task DisposeAsync()
    {
        Operator?.Dispose();
        if (Host is not null)
        {
            await Host.DisposeAsync();
        }
    }
}
