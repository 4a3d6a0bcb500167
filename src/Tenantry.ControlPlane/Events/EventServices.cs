using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Tenantry.ControlPlane.Events;

/// <summary>Registration of the Events feature: the outbox every feature appends to.</summary>
internal static class EventServices
{
    public static IServiceCollection AddTenantryEvents(this IServiceCollection services)
    {
        services.TryAddSingleton<EventSignals>();
        services.TryAddSingleton<IEventOutbox, EventOutbox>();
        return services;
    }
}
