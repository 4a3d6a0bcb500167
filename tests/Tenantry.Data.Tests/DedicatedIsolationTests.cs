using Npgsql;
using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;

namespace Tenantry.Data.Tests;

/// <summary>Tries to break bridge (schema + role per tenant) and silo (database + role per tenant).</summary>
[Collection(DedicatedCollection.Name)]
public sealed class DedicatedIsolationTests(DedicatedFixture fixture) : IAsyncLifetime
{
    private readonly ITenantDataSource _data = TenantDataSource.Create();
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..6];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _data.DisposeAsync();

    private async Task<(TenantDataContext A, TenantDataContext B)> TwoBridgeTenantsAsync()
    {
        var a = await fixture.CreateBridgeAsync($"br-a-{_suffix}");
        var b = await fixture.CreateBridgeAsync($"br-b-{_suffix}");
        var report = await new TenantMigrationRunner(TestSchema.Orders).RunAsync(
            [MigrationTarget.PostgresBridge(fixture.BridgeAdminConnectionString, a.Slug), MigrationTarget.PostgresBridge(fixture.BridgeAdminConnectionString, b.Slug)]);
        Assert.True(report.Succeeded, report.ToString());
        foreach (var tenant in new[] { a, b })
        {
            await using var session = await _data.OpenSessionAsync(tenant);
            await session.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, @n, 1)", [("@id", Guid.CreateVersion7()), ("@n", tenant.Slug)]);
            await session.CommitAsync();
        }

        return (a, b);
    }

    [Fact]
    public async Task A_bridge_tenant_works_in_its_schema_and_cannot_reach_another()
    {
        var (a, b) = await TwoBridgeTenantsAsync();
        var otherSchema = TenantDatabaseNames.BridgeSchema(b.Slug);

        await using (var session = await _data.OpenSessionAsync(a))
        {
            Assert.Equal([a.Slug], await session.QueryAsync("SELECT number FROM orders", r => r.GetString(0)));
            Assert.Equal(TenantDatabaseNames.BridgeSchema(a.Slug), await session.ScalarAsync("SELECT current_schema()"));
        }

        foreach (var sql in new[]
        {
            $"SELECT count(*) FROM \"{otherSchema}\".orders",
            $"INSERT INTO \"{otherSchema}\".orders (id, number, amount) VALUES (gen_random_uuid(), 'x', 1)",
            "SELECT count(*) FROM schema_migrations",
            "CREATE TABLE mine (id int)",
            $"CREATE TABLE public.mine (id int)",
        })
        {
            await using var session = await _data.OpenSessionAsync(a);
            var error = await Assert.ThrowsAsync<PostgresException>(() => session.ExecuteAsync(sql));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        }

        // Pointing search_path at the other schema finds nothing there: no USAGE, so it is skipped.
        await using (var session = await _data.OpenSessionAsync(a))
        {
            await session.ExecuteAsync($"SET LOCAL search_path TO \"{otherSchema}\"");
            var error = await Assert.ThrowsAsync<PostgresException>(() => session.ScalarAsync("SELECT count(*) FROM orders"));
            Assert.Equal(PostgresErrorCodes.UndefinedTable, error.SqlState);
        }

        // Nor can it become the other tenant's role.
        await using (var session = await _data.OpenSessionAsync(a))
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => session.ExecuteAsync($"SET ROLE \"{TenantDatabaseNames.BridgeRole(b.Slug)}\""));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        }
    }

    [Fact]
    public async Task A_bridge_role_password_is_really_checked()
    {
        var (a, _) = await TwoBridgeTenantsAsync();
        var target = (PostgresBridgeTarget)a.Target;
        var wrong = a with { Target = target with { Password = "not-the-password" } };
        var error = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var session = await _data.OpenSessionAsync(wrong);
            await session.ScalarAsync("SELECT 1");
        });
        Assert.Equal(PostgresErrorCodes.InvalidPassword, error.SqlState);
    }

    [Fact]
    public async Task Silo_credentials_open_their_own_database_only()
    {
        var c = await fixture.CreateSiloAsync($"silo-c-{_suffix}");
        var d = await fixture.CreateSiloAsync($"silo-d-{_suffix}");
        var report = await new TenantMigrationRunner(TestSchema.Orders).RunAsync(
            [MigrationTarget.PostgresSilo(c.Slug, (PostgresSiloTarget)c.Target), MigrationTarget.PostgresSilo(d.Slug, (PostgresSiloTarget)d.Target)]);
        Assert.True(report.Succeeded, report.ToString());

        await using (var session = await _data.OpenSessionAsync(c))
        {
            await session.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, 'c-1', 1)", [("@id", Guid.CreateVersion7())]);
            await session.CommitAsync();
        }

        var cTarget = (PostgresSiloTarget)c.Target;
        foreach (var database in new[] { ((PostgresSiloTarget)d.Target).Database, DedicatedFixture.BridgeDatabase })
        {
            var intruder = c with { Target = cTarget with { Database = database } };
            var error = await Assert.ThrowsAsync<PostgresException>(async () =>
            {
                await using var session = await _data.OpenSessionAsync(intruder);
                await session.ScalarAsync("SELECT 1");
            });
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, error.SqlState);
        }

        await using (var session = await _data.OpenSessionAsync(d))
        {
            Assert.Equal(0L, await session.ScalarAsync("SELECT count(*) FROM orders"));
        }
    }

    [Fact]
    public async Task Provisioning_is_idempotent_and_dropping_ends_sessions_and_removes_everything()
    {
        var slugBridge = $"drop-b-{_suffix}";
        var slugSilo = $"drop-s-{_suffix}";
        var bridge = await fixture.CreateBridgeAsync(slugBridge);
        var bridgeAgain = await fixture.CreateBridgeAsync(slugBridge);
        var silo = await fixture.CreateSiloAsync(slugSilo);
        var siloAgain = await fixture.CreateSiloAsync(slugSilo);

        // Re-provisioning re-keys the role: the new password works, the old one no longer does.
        await using (var session = await _data.OpenSessionAsync(bridgeAgain))
        {
            Assert.Equal(1, await session.ScalarAsync("SELECT 1"));
        }

        await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var session = await _data.OpenSessionAsync(silo);
            await session.ScalarAsync("SELECT 1");
        });

        await using var open = await _data.OpenSessionAsync(siloAgain);
        Assert.Equal(1, await open.ScalarAsync("SELECT 1"));

        await using (var admin = await fixture.OpenAdminAsync(DedicatedFixture.BridgeDatabase))
        {
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropBridgeTenant(slugBridge));
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropBridgeTenant(slugBridge));
        }

        await using (var admin = await fixture.OpenAdminAsync())
        {
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropSiloTenant(slugSilo));
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropSiloTenant(slugSilo));
            await using var left = new NpgsqlCommand(
                "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)) + (SELECT count(*) FROM pg_database WHERE datname = $2)", admin);
            left.Parameters.Add(new NpgsqlParameter { Value = new[] { TenantDatabaseNames.BridgeRole(slugBridge), TenantDatabaseNames.SiloRole(slugSilo) } });
            left.Parameters.Add(new NpgsqlParameter { Value = TenantDatabaseNames.SiloDatabase(slugSilo) });
            Assert.Equal(0L, await left.ExecuteScalarAsync());
        }

        // The open session was terminated with its database.
        await Assert.ThrowsAnyAsync<Exception>(() => open.ScalarAsync("SELECT 1"));
        await _data.ForgetAsync(bridge);
        await _data.ForgetAsync(siloAgain);
    }
}
