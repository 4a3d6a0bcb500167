using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Mail;

/// <summary>Registration of the Mail feature: the mail queue and the worker that sends it (SMTP or .eml files).</summary>
internal static class MailServices
{
    public static IServiceCollection AddTenantryMail(this IServiceCollection services)
    {
        services.AddOptions<MailOptions>().BindConfiguration(MailOptions.Section).ValidateSettings(MailOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MailOptions>, MailOptionsValidator>());
        services.TryAddSingleton<MailSignals>();
        services.TryAddSingleton<MailOutbox>();
        services.TryAddSingleton<SmtpMailTransport>();
        services.TryAddSingleton<EmlFileTransport>();
        // Tenantry:Mail:Smtp:Host — set: SMTP; empty: .eml files in the data dir.
        services.TryAddSingleton<IMailTransport>(sp => sp.GetRequiredService<IOptions<MailOptions>>().Value.Smtp.Enabled
            ? sp.GetRequiredService<SmtpMailTransport>()
            : sp.GetRequiredService<EmlFileTransport>());
        services.AddHostedService<MailWorker>();
        return services;
    }
}
