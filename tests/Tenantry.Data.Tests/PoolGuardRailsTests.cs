using Npgsql;
using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;

namespace Tenantry.Data.Tests;

[Collection(PoolCollection.Name)]
public sealed class PoolGuardRailsTests(PoolFixture fixture)
{
    [Fact]
    public async Task The_migrated_pool_keeps_every_guard_rail()
    {
        await using var admin = new NpgsqlConnection(fixture.AdminConnectionString);
        await admin.OpenAsync();
        Assert.Empty(await PoolGuardRails.CheckAsync(admin, "public", PoolFixture.AppRole));

        // And the schema really has tenant tables for the check to look at.
        await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relforcerowsecurity", admin);
        Assert.Equal(2L, await count.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Guard_rails_catch_a_deliberately_broken_table()
    {
        await using var admin = new NpgsqlConnection(fixture.AdminConnectionString);
        await admin.OpenAsync();
        var schema = "guard_" + Guid.NewGuid().ToString("N")[..8];
        var good = MigrationSql.Render(TestSchema.Orders.Migrations[0], DatabaseEngine.Postgres, IsolationModel.Pool);
        await using (var setup = new NpgsqlCommand($"""
            CREATE SCHEMA {schema};
            SET search_path TO {schema};
            {good}
            -- RLS on but not forced; the policy uses random() and has no WITH CHECK; the key ignores tenant_id.
            CREATE TABLE broken (id integer PRIMARY KEY, tenant_id uuid NOT NULL, number text UNIQUE);
            ALTER TABLE broken ENABLE ROW LEVEL SECURITY;
            CREATE POLICY sloppy ON broken USING ({PostgresTenantDdl.TenantPredicate} AND random() >= 0);
            -- A policy that lets everything through.
            CREATE TABLE wide_open (tenant_id uuid NOT NULL, id integer, PRIMARY KEY (tenant_id, id));
            ALTER TABLE wide_open ENABLE ROW LEVEL SECURITY;
            ALTER TABLE wide_open FORCE ROW LEVEL SECURITY;
            CREATE POLICY everyone ON wide_open USING (true) WITH CHECK (true);
            -- Forgotten entirely.
            CREATE TABLE forgotten (tenant_id uuid NOT NULL, id integer);
            ALTER TABLE forgotten OWNER TO {PoolFixture.AppRole};
            RESET search_path;
            """, admin))
        {
            await setup.ExecuteNonQueryAsync();
        }

        try
        {
            var violations = await PoolGuardRails.CheckAsync(admin, schema, PoolFixture.AppRole);
            var found = violations.Select(v => (v.Table, v.Rule)).ToHashSet();
            Assert.DoesNotContain(violations, v => v.Table == "orders");
            Assert.Contains(("broken", PoolGuardRails.RlsNotForced), found);
            Assert.Contains(("broken", PoolGuardRails.NoWithCheck), found);
            Assert.Contains(("broken", PoolGuardRails.VolatileFunction), found);
            Assert.Contains(("broken", PoolGuardRails.NoTenantIndex), found);
            Assert.Contains(("broken", PoolGuardRails.UniqueWithoutTenant), found);
            Assert.Contains(("wide_open", PoolGuardRails.PolicyNotTenantScoped), found);
            Assert.Contains(("forgotten", PoolGuardRails.RlsNotEnabled), found);
            Assert.Contains(("forgotten", PoolGuardRails.NoPolicy), found);
            Assert.Contains(("forgotten", PoolGuardRails.AppRoleOwnsTable), found);
            Assert.Contains("random", violations.Single(v => v.Rule == PoolGuardRails.VolatileFunction).Message, StringComparison.Ordinal);
        }
        finally
        {
            await using var drop = new NpgsqlCommand($"DROP SCHEMA {schema} CASCADE", admin);
            await drop.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task An_app_role_that_bypasses_rls_is_a_violation()
    {
        await using var admin = new NpgsqlConnection(fixture.AdminConnectionString);
        await admin.OpenAsync();
        var violations = await PoolGuardRails.CheckAsync(admin, "public", "postgres");
        Assert.Contains(violations, v => v.Rule == PoolGuardRails.AppRoleBypassesRls);
        Assert.Contains(violations, v => v.Rule == PoolGuardRails.AppRoleOwnsTable);
    }
}
