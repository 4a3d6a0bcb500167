using Microsoft.Extensions.DependencyInjection;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.TierChanges;
using Tenantry.Data;
using Tenantry.FunctionalTests.Tenants;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.TierChanges;

/// <summary>Tier changes on real PostgreSQL servers: the pool with forced row-level security, a bridge schema, a silo database.</summary>
[Trait("Category", "PostgreSQL")]
public sealed class TierChangePostgresTests(TwoPostgresServers pg) : IClassFixture<TwoPostgresServers>
{
    [Fact]
    public async Task Basic_to_premium_to_standard_to_basic_on_postgresql_keeps_every_row_rls_and_leaves_no_old_copy()
    {
        await using var factory = pg.Host();
        factory.Settings["Tenantry:TierChanges:SourceGrace"] = "00:00:00";
        factory.Settings["Tenantry:TierChanges:DrainTime"] = "00:00:00";
        using var client = await factory.OperatorAsync();
        await SampleApps.RegisterOrdersAsync(client);
        var id = await client.CreateActiveTenantAsync("pg-mover", "basic");
        var neighbour = await client.CreateActiveTenantAsync("pg-mover-neighbour", "basic");
        var tenant = Guid.Parse(id);
        await InsertAsync(factory, Ref(id, "pg-mover", IsolationModel.Pool), 25, "before");
        await InsertAsync(factory, Ref(neighbour, "pg-mover-neighbour", IsolationModel.Pool), 2, "neighbour");

        // Writes while the copy runs (after each table is copied): caught by catch-up, not by the copy.
        var hooks = factory.Services.GetRequiredService<TierChangeHooks>();
        var during = 0;
        var current = IsolationModel.Pool;
        hooks.At = async (point, moving, ct) =>
        {
            if (point == "copy-batch" && moving == tenant)
            {
                during++;
                await InsertAsync(factory, Ref(id, "pg-mover", current), 1, $"during {during}");
            }
        };

        var expected = await OrdersAsync(factory, Ref(id, "pg-mover", IsolationModel.Pool));
        foreach (var (tier, isolation) in new[] { ("premium", IsolationModel.Silo), ("standard", IsolationModel.Bridge), ("basic", IsolationModel.Pool) })
        {
            var before = during;
            var op = await TierChangeTests.ChangeTierAsync(client, id, tier);
            Assert.True(op.GetProperty("status").GetString() == "succeeded", op.ToString());
            var moved = await OrdersAsync(factory, Ref(id, "pg-mover", isolation));
            Assert.Equal(expected.Count + (during - before), moved.Count);
            Assert.All(expected, row => Assert.Contains(row, moved));
            Assert.Equal(during - before, moved.Count(o => !expected.Contains(o) && o.Note.StartsWith("during", StringComparison.Ordinal)));
            expected = moved;
            current = isolation;

            // The old place is gone; the pool's tables keep forced RLS and no trigger of the move.
            Assert.Equal(isolation == IsolationModel.Silo, await TwoPostgresServers.ScalarAsync<bool>(pg.A, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_pg_mover')")
                || await TwoPostgresServers.ScalarAsync<bool>(pg.B, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_pg_mover')"));
            Assert.Equal(isolation == IsolationModel.Bridge, await BridgeSchemaAsync(pg.A) || await BridgeSchemaAsync(pg.B));
            Assert.Equal(isolation == IsolationModel.Pool ? expected.Count : 0L,
                await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM orders WHERE tenant_id = $1", tenant));
            Assert.True(await TwoPostgresServers.ScalarAsync<bool>(pg.A, "tenantry_pool", "SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class WHERE relname IN ('orders', 'order_attachments')"));
            Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tenantry_tier_%'"));
            Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM pg_class WHERE relname LIKE 'tenantry_tier_%'"));

            // The neighbour on the pool sees its own rows, never the moved tenant's, even by naming them.
            var neighbourRows = await OrdersAsync(factory, Ref(neighbour, "pg-mover-neighbour", IsolationModel.Pool));
            Assert.Equal(2, neighbourRows.Count);
            await using var session = await factory.Services.GetRequiredService<ITenantDataSource>().OpenReadSessionAsync((await ContextAsync(factory, Ref(neighbour, "pg-mover-neighbour", IsolationModel.Pool)))!);
            Assert.Equal(0L, await session.ScalarAsync("SELECT count(*) FROM orders WHERE tenant_id = @t", [("@t", tenant)]));
        }

        Assert.True(during >= 3);
    }

    [Fact]
    public async Task On_postgresql_the_freeze_refuses_writes_and_a_checksum_mismatch_rolls_back_with_nothing_lost()
    {
        await using var factory = pg.Host();
        using var client = await factory.OperatorAsync();
        await SampleApps.RegisterOrdersAsync(client);
        var id = await client.CreateActiveTenantAsync("pg-rollback", "basic");
        var tenant = Guid.Parse(id);
        var pool = Ref(id, "pg-rollback", IsolationModel.Pool);
        await InsertAsync(factory, pool, 5, "kept");
        var before = await OrdersAsync(factory, pool);

        Exception? refused = null;
        factory.Services.GetRequiredService<TierChangeHooks>().At = async (point, moving, ct) =>
        {
            if (moving != tenant)
            {
                return;
            }

            if (point == "bulk-verify")
            {
                // Written as the bulk verify starts: checked by the verify under the freeze.
                await InsertAsync(factory, pool, 1, "late");
            }
            else if (point == "frozen")
            {
                refused = await Record.ExceptionAsync(() => InsertAsync(factory, pool, 1, "during the freeze"));
            }
            else if (point == "verify")
            {
                // The target no longer holds what the source does.
                foreach (var server in new[] { pg.A, pg.B })
                {
                    if (await BridgeSchemaAsync(server))
                    {
                        await TwoPostgresServers.ScalarAsync<int>(server, "tenantry_bridge", "UPDATE tenant_pg_rollback.orders SET note = 'tampered' WHERE note = 'late' RETURNING 1");
                    }
                }
            }
        };

        var op = await TierChangeTests.ChangeTierAsync(client, id, "standard");
        Assert.Equal("failed", op.GetProperty("status").GetString());
        Assert.Contains("differs", op.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("55P03", Assert.IsType<Npgsql.PostgresException>(refused).SqlState);

        var state = await client.GetJsonAsync($"/v1/tenants/{id}");
        Assert.Equal(("basic", "pool", "active"), (state.GetProperty("tier").GetString(), state.GetProperty("isolation").GetString(), state.GetProperty("status").GetString()));
        Assert.False(await BridgeSchemaAsync(pg.A) || await BridgeSchemaAsync(pg.B));
        Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tenantry_tier_%'"));
        Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM pg_proc WHERE proname LIKE 'tenantry_tier_%'"));

        // Nothing lost, and the tenant writes at its source again.
        var kept = await OrdersAsync(factory, pool);
        Assert.Equal(before, kept.Where(o => o.Note != "late"));
        Assert.Single(kept, o => o.Note == "late");
        await InsertAsync(factory, pool, 1, "after");
        Assert.Equal(kept.Count + 1, (await OrdersAsync(factory, pool)).Count);
    }

    private static async Task<bool> BridgeSchemaAsync(PostgresServer server) =>
        await TwoPostgresServers.ScalarAsync<bool>(server, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenantry_bridge')")
        && await TwoPostgresServers.ScalarAsync<bool>(server, "tenantry_bridge", "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_pg_mover' OR nspname = 'tenant_pg_rollback')");

    private static TenantRef Ref(string id, string slug, IsolationModel isolation) => TenantRef.ForData(Guid.Parse(id), slug, isolation);

    private static async Task<TenantDataContext?> ContextAsync(TenantryFactory factory, TenantRef tenant) =>
        await factory.Services.GetRequiredService<ITenantDatabaseProvider>().ConnectAsync(tenant, CancellationToken.None);

    private static async Task InsertAsync(TenantryFactory factory, TenantRef tenant, int count, string note)
    {
        await using var session = await factory.Services.GetRequiredService<ITenantDataSource>().OpenSessionAsync((await ContextAsync(factory, tenant))!);
        for (var i = 0; i < count; i++)
        {
            await session.ExecuteAsync(
                "INSERT INTO orders (tenant_id, id, number, amount, note, created_by, created_at) VALUES (@tenant, @id, @number, @amount, @note, 'test', @at)",
                [("@tenant", tenant.Id), ("@id", Guid.NewGuid()), ("@number", $"A-{i}"), ("@amount", 10.25m + i), ("@note", note), ("@at", DateTimeOffset.UtcNow.AddMinutes(-i))]);
        }

        await session.CommitAsync();
    }

    private static async Task<List<(Guid Id, string Number, decimal Amount, string Note, DateTime At)>> OrdersAsync(TenantryFactory factory, TenantRef tenant)
    {
        await using var session = await factory.Services.GetRequiredService<ITenantDataSource>().OpenReadSessionAsync((await ContextAsync(factory, tenant))!);
        return await session.QueryAsync("SELECT id, number, amount, note, created_at FROM orders ORDER BY id",
            r => (r.GetGuid(0), r.GetString(1), r.GetDecimal(2), r.GetString(3), r.GetDateTime(4)));
    }
}
