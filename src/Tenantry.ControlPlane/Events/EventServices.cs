using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Events;

/// <summary>Registration of the Events feature: the outbox every feature appends to, and its delivery to webhooks.</summary>
internal static class EventServices
{
    public static IServiceCollection AddTenantryEvents(this IServiceCollection services)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.Section).ValidateSettings(WebhookOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WebhookOptions>, WebhookOptionsValidator>());
        services.TryAddSingleton<EventSignals>();
        services.TryAddSingleton<IEventOutbox, EventOutbox>();
        services.TryAddSingleton<WebhookUrlGuard>();
        services.TryAddSingleton<WebhookSecrets>();
        services.TryAddSingleton<WebhookSender>();
        services.AddHostedService<WebhookWorker>();
        return services;
    }
}
