using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Identity;

/// <summary>The whole platform for the sign-in flows whose tokens end at the gateway; without the silo tenant, which they do not use.</summary>
public sealed class IdentityPlatformFixture() : PlatformFixture(withSilo: false);

[CollectionDefinition(Name)]
public sealed class IdentityPlatformCollection : ICollectionFixture<IdentityPlatformFixture>
{
    public const string Name = "identity platform";
}
