using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Billing;

/// <summary>One private PostgreSQL server for the class; each test gets a fresh control-plane database on it.</summary>
public sealed class BillingPostgresFixture : IAsyncLifetime
{
    private int _databases;

    public PostgresServer Server { get; private set; } = null!;

    public async Task<string> NewDatabaseAsync()
    {
        var name = $"billing_{Interlocked.Increment(ref _databases)}";
        await Server.ExecuteAsync($"CREATE DATABASE {name}");
        return Server.SuperuserConnectionStringFor(name);
    }

    public async Task InitializeAsync() => Server = await PostgresServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>The billing scenarios with the control-plane store on PostgreSQL (<c>Tenantry:Store</c> set).</summary>
[Collection(SoloCollection.Name)]
public sealed class BillingOnPostgresTests(BillingPostgresFixture fixture) : BillingScenarios, IClassFixture<BillingPostgresFixture>
{
    protected override async Task<string?> StoreAsync() => await fixture.NewDatabaseAsync();
}
