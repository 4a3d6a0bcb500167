using Npgsql;
using Tenantry.Data.Migrations;

namespace Tenantry.Data.Tests;

[Collection(DedicatedCollection.Name)]
public sealed class MigrationFanOutTests(DedicatedFixture fixture)
{
    [Fact]
    public async Task Fan_out_over_20_bridge_schemas_and_3_silos_reports_the_broken_targets_and_resumes_without_repeating()
    {
        var database = "fanout_" + Guid.NewGuid().ToString("N")[..6];
        await fixture.CreateBridgeDatabaseAsync(database);
        var admin = fixture.Server.SuperuserConnectionStringFor(database);
        var bridges = new List<string>();
        for (var i = 1; i <= 20; i++)
        {
            var tenant = await fixture.CreateBridgeAsync($"fan-{i:00}", database);
            bridges.Add(tenant.Slug);
        }

        var silos = new List<TenantDataContext>();
        for (var i = 1; i <= 3; i++)
        {
            silos.Add(await fixture.CreateSiloAsync($"fan-silo-{i}-{database[^6..]}"));
        }

        // fan-07 already holds a table in the way of migration 1; silo 2 holds one in the way of migration 2.
        await using (var connection = await fixture.OpenAdminAsync(database))
        await using (var command = new NpgsqlCommand($"CREATE TABLE \"{TenantDatabaseNames.BridgeSchema("fan-07")}\".orders (stray int)", connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        var silo2 = (PostgresSiloTarget)silos[1].Target;
        var silo2Owner = fixture.Server.ConnectionString(silo2.Database, silo2.Role, silo2.Password);
        await using (var connection = new NpgsqlConnection(silo2Owner))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("CREATE TABLE orders_created_at_idx (stray int)", connection);
            await command.ExecuteNonQueryAsync();
        }

        NpgsqlConnection.ClearAllPools();
        var targets = bridges.Select(slug => MigrationTarget.PostgresBridge(admin, slug))
            .Concat(silos.Select(s => MigrationTarget.PostgresSilo(s.Slug, (PostgresSiloTarget)s.Target)))
            .ToList();
        var runner = new TenantMigrationRunner(TestSchema.Orders, new MigrationRunnerOptions { MaxParallelism = 4 });

        var first = await runner.RunAsync(targets);
        Assert.Equal(23, first.Targets.Count);
        var failed = first.Failed.ToDictionary(f => f.Target);
        Assert.Equal(["fan-07", silos[1].Slug], failed.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(1, failed["fan-07"].FailedVersion);
        Assert.Contains("already exists", failed["fan-07"].Error, StringComparison.Ordinal);
        Assert.Empty(failed["fan-07"].Applied);
        Assert.Equal(2, failed[silos[1].Slug].FailedVersion);
        Assert.Equal([1], failed[silos[1].Slug].Applied);
        Assert.All(first.Targets.Where(t => t.Succeeded), t => Assert.Equal([1, 2, 3], t.Applied));

        // Run again: nothing applied twice, the broken ones still reported.
        var second = await runner.RunAsync(targets);
        Assert.All(second.Targets.Where(t => t.Succeeded), t => Assert.Empty(t.Applied));
        Assert.All(second.Targets.Where(t => t.Succeeded), t => Assert.Equal(3, t.AlreadyApplied));
        Assert.Equal(2, second.Failed.Count());

        // Fix both and run again: each resumes at the version it failed.
        await using (var connection = await fixture.OpenAdminAsync(database))
        await using (var command = new NpgsqlCommand($"DROP TABLE \"{TenantDatabaseNames.BridgeSchema("fan-07")}\".orders", connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        await using (var connection = new NpgsqlConnection(silo2Owner))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("DROP TABLE orders_created_at_idx", connection);
            await command.ExecuteNonQueryAsync();
        }

        var third = await runner.RunAsync(targets);
        Assert.True(third.Succeeded, third.ToString());
        var applied = third.Targets.Where(t => t.Applied.Count > 0).ToDictionary(t => t.Target, t => t.Applied);
        Assert.Equal(2, applied.Count);
        Assert.Equal([1, 2, 3], applied["fan-07"]);
        Assert.Equal([2, 3], applied[silos[1].Slug]);

        // Every ledger holds each version exactly once.
        await using (var connection = await fixture.OpenAdminAsync(database))
        await using (var command = new NpgsqlCommand(
            "SELECT count(*) FROM pg_namespace n WHERE n.nspname LIKE 'tenant_fan_%' AND (SELECT count(*) FROM pg_tables t WHERE t.schemaname = n.nspname) = 3", connection))
        {
            Assert.Equal(20L, await command.ExecuteScalarAsync());
        }

        await using var data = TenantDataSource.Create();
        await using var session = await data.OpenSessionAsync(await fixture.CreateBridgeAsync("fan-07", database));
        // The tenant role sees its two tables; the ledger is not its business.
        Assert.Equal(2L, await session.ScalarAsync("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"));
    }

    [Fact]
    public async Task Two_runners_at_once_apply_each_version_exactly_once()
    {
        var database = "race_" + Guid.NewGuid().ToString("N")[..6];
        await fixture.CreateBridgeDatabaseAsync(database);
        var admin = fixture.Server.SuperuserConnectionStringFor(database);
        var targets = new List<MigrationTarget>();
        for (var i = 1; i <= 6; i++)
        {
            var tenant = await fixture.CreateBridgeAsync($"race-{i}", database);
            targets.Add(MigrationTarget.PostgresBridge(admin, tenant.Slug));
        }

        var reports = await Task.WhenAll(
            new TenantMigrationRunner(TestSchema.Orders).RunAsync(targets),
            new TenantMigrationRunner(TestSchema.Orders).RunAsync(targets.AsEnumerable().Reverse()));
        Assert.All(reports, r => Assert.True(r.Succeeded, r.ToString()));
        Assert.Equal(6 * 3, reports.Sum(r => r.AppliedCount));
    }
}
