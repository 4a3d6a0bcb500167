using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;

namespace Tenantry.Data.Tests;

/// <summary>DDL text: identifiers from validated slugs, always quoted; values never inline.</summary>
public sealed class DdlTests
{
    [Theory]
    [InlineData("ab")]
    [InlineData("-abc")]
    [InlineData("abc-")]
    [InlineData("a--bc")]
    [InlineData("ABC")]
    [InlineData("abc_d")]
    [InlineData("a\"bc")]
    [InlineData("abc'; DROP ROLE postgres; --")]
    [InlineData("abcdefghijabcdefghijabcdefghijabcdefghijx")]
    public void Bad_slugs_never_become_names(string slug)
    {
        Assert.Throws<ArgumentException>(() => TenantDatabaseNames.BridgeSchema(slug));
        Assert.Throws<ArgumentException>(() => PostgresTenantDdl.CreateBridgeTenant(slug, "long-enough-password"));
        Assert.Throws<ArgumentException>(() => PostgresTenantDdl.CreateSiloDatabase(slug));
        Assert.Throws<ArgumentException>(() => PostgresTenantDdl.DropSiloTenant(slug));
    }

    [Fact]
    public void Names_are_derived_one_to_one_and_quoted()
    {
        Assert.Equal("tenant_acme_corp", TenantDatabaseNames.BridgeSchema("acme-corp"));
        Assert.Equal("tenant_acme_corp_app", TenantDatabaseNames.BridgeRole("acme-corp"));
        Assert.Equal("tenant_acme_corp_owner", TenantDatabaseNames.SiloRole("acme-corp"));
        Assert.Equal("\"we\"\"ird\"", TenantDatabaseNames.Quote("we\"ird"));
        var ddl = PostgresTenantDdl.CreateBridgeTenant("acme-corp", "long-enough-password");
        Assert.Contains(ddl, s => s.Text == "CREATE SCHEMA IF NOT EXISTS \"tenant_acme_corp\"");
        Assert.Contains(ddl, s => s.Text == "ALTER ROLE \"tenant_acme_corp_app\" SET search_path TO \"tenant_acme_corp\"");
    }

    [Fact]
    public void Passwords_travel_only_as_scram_verifier_parameters()
    {
        const string password = "long-enough-password";
        var ddl = PostgresTenantDdl.CreateBridgeTenant("acme", password).Concat(PostgresTenantDdl.CreateSiloRole("acme", password)).ToList();
        Assert.All(ddl, s => Assert.DoesNotContain(password, s.Text, StringComparison.Ordinal));
        Assert.All(ddl.SelectMany(s => s.Parameters).OfType<string>(), p => Assert.NotEqual(password, p));
        Assert.Contains(ddl.SelectMany(s => s.Parameters).OfType<string>(), p => p.StartsWith("SCRAM-SHA-256$4096:", StringComparison.Ordinal));
        Assert.Throws<ArgumentException>(() => PostgresTenantDdl.CreateSiloRole("acme", "short"));
        Assert.Throws<ArgumentException>(() => PostgresTenantDdl.CreateSiloRole("acme", "has a space in it"));
    }

    [Fact]
    public void Pool_tables_lead_every_key_with_tenant_id_and_dedicated_tables_have_none()
    {
        var pool = MigrationSql.Render(TestSchema.Orders.Migrations[0], DatabaseEngine.Postgres, IsolationModel.Pool);
        Assert.Contains("PRIMARY KEY (\"tenant_id\", \"id\")", pool, StringComparison.Ordinal);
        Assert.Contains("UNIQUE (\"tenant_id\", \"number\")", pool, StringComparison.Ordinal);
        Assert.Contains("FORCE ROW LEVEL SECURITY", pool, StringComparison.Ordinal);
        Assert.Contains("WITH CHECK (" + PostgresTenantDdl.TenantPredicate + ")", pool, StringComparison.Ordinal);

        var silo = MigrationSql.Render(TestSchema.Orders.Migrations[0], DatabaseEngine.Postgres, IsolationModel.Silo);
        Assert.DoesNotContain("tenant_id", silo, StringComparison.Ordinal);
        Assert.DoesNotContain("POLICY", silo, StringComparison.Ordinal);
    }

    [Fact]
    public void A_silo_target_travels_as_a_connection_string_and_comes_back_the_same()
    {
        var target = PostgresSiloTarget.For(new PostgresEndpoint("db.internal", 6432) { ExtraSettings = "SSL Mode=Require;Timeout=7" }, "acme-corp", "long-enough-password");
        var back = PostgresSiloTarget.FromConnectionString(target.ToConnectionString());
        Assert.Equal((target.Server.Host, target.Server.Port, target.Database, target.Role, target.Password), (back.Server.Host, back.Server.Port, back.Database, back.Role, back.Password));
        Assert.Contains("SSL Mode=Require", back.Server.ExtraSettings, StringComparison.Ordinal);
        Assert.DoesNotContain("long-enough-password", back.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("long-enough-password", back.Server.ExtraSettings, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => PostgresSiloTarget.FromConnectionString("Host=db.internal;Database=tenant_acme;Username=tenant_acme_owner"));
    }

    [Fact]
    public void Migration_versions_must_increase()
    {
        Assert.Throws<ArgumentException>(() => new TenantSchema("x", [new TenantMigration(2, "b"), new TenantMigration(1, "a")]));
        Assert.Throws<ArgumentException>(() => new TenantSchema("x", [new TenantMigration(1, "a"), new TenantMigration(1, "b")]));
    }
}
