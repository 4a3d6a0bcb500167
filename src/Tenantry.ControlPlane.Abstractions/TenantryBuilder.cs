using Microsoft.Extensions.DependencyInjection;

namespace Tenantry.ControlPlane;

/// <summary>Returned by <c>AddTenantryControlPlane</c>; engines (<c>AddPostgresStore</c>, <c>AddS3ObjectStorage</c>, …) hang off it.</summary>
public sealed class TenantryBuilder(IServiceCollection services)
{
    public IServiceCollection Services { get; } = services;
}
