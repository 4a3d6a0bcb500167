using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane.Tests.Tenants;

public sealed class TenantRulesTests
{
    [Theory]
    [InlineData("acme")]
    [InlineData("a1b")]
    [InlineData("acme-corp-2")]
    [InlineData("abcdefghijabcdefghijabcdefghijabcdefghij")]
    public void Valid_slugs_pass(string slug) => Assert.Null(TenantRules.CheckSlug(slug));

    [Theory]
    [InlineData("")]
    [InlineData("ab")]
    [InlineData("abcdefghijabcdefghijabcdefghijabcdefghijk")]
    [InlineData("Acme")]
    [InlineData("acme_corp")]
    [InlineData("-acme")]
    [InlineData("acme-")]
    [InlineData("ac--me")]
    [InlineData("../x")]
    [InlineData("a/b/c")]
    [InlineData("a\\b")]
    [InlineData("a b")]
    [InlineData("acme\n")]
    [InlineData("acme\u0000")]
    [InlineData("x';--")]
    [InlineData("\u0430cme")]
    [InlineData("www")]
    public void Invalid_slugs_are_refused(string slug) => Assert.NotNull(TenantRules.CheckSlug(slug));

    [Theory]
    [InlineData("Acme Corp", "acme-corp")]
    [InlineData("  Café Müller & Söhne  ", "cafe-muller-sohne")]
    [InlineData("A", "a-tenant")]
    [InlineData("!!!", "tenant")]
    [InlineData("Admin", "admin-t")]
    public void Slugs_from_names_are_valid(string name, string expected)
    {
        var slug = TenantRules.SlugFromName(name);
        Assert.Equal(expected, slug);
        Assert.Null(TenantRules.CheckSlug(slug));
    }

    [Fact]
    public void Slug_from_a_very_long_name_is_valid() =>
        Assert.Null(TenantRules.CheckSlug(TenantRules.SlugFromName(new string('x', 500))));

    [Theory]
    [InlineData("ops@acme.test", true)]
    [InlineData("first.last+tag@sub.acme.io", true)]
    [InlineData("not-an-email", false)]
    [InlineData("a@b", false)]
    [InlineData("Name <a@b.test>", false)]
    [InlineData("a b@c.test", false)]
    [InlineData("", false)]
    public void Emails_are_checked(string email, bool valid) => Assert.Equal(valid, TenantRules.CheckEmail(email) is null);

    [Theory]
    [InlineData("Acme", true)]
    [InlineData("   ", false)]
    [InlineData("Bad\u0007Bell", false)]
    public void Names_are_checked(string name, bool valid) => Assert.Equal(valid, TenantRules.CheckName(name) is null);
}

public sealed class TenantLifecycleTests
{
    [Theory]
    [InlineData(TenantStatus.Provisioning, TenantStatus.Active, true)]
    [InlineData(TenantStatus.Provisioning, TenantStatus.Failed, true)]
    [InlineData(TenantStatus.Active, TenantStatus.Suspended, true)]
    [InlineData(TenantStatus.Suspended, TenantStatus.Active, true)]
    [InlineData(TenantStatus.Active, TenantStatus.Offboarding, true)]
    [InlineData(TenantStatus.Suspended, TenantStatus.Offboarding, true)]
    [InlineData(TenantStatus.Failed, TenantStatus.Provisioning, true)]
    [InlineData(TenantStatus.Offboarding, TenantStatus.Offboarded, true)]
    [InlineData(TenantStatus.Provisioning, TenantStatus.Suspended, false)]
    [InlineData(TenantStatus.Offboarded, TenantStatus.Active, false)]
    [InlineData(TenantStatus.Offboarded, TenantStatus.Provisioning, false)]
    [InlineData(TenantStatus.Offboarding, TenantStatus.Active, false)]
    [InlineData(TenantStatus.Suspended, TenantStatus.Provisioning, false)]
    public void Only_the_documented_transitions_are_allowed(TenantStatus from, TenantStatus to, bool allowed) =>
        Assert.Equal(allowed, TenantLifecycle.CanMove(from, to));

    [Fact]
    public void Offboarded_is_terminal()
    {
        foreach (var to in Enum.GetValues<TenantStatus>())
        {
            Assert.False(TenantLifecycle.CanMove(TenantStatus.Offboarded, to));
        }
    }
}
