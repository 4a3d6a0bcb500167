using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Tenantry;

/// <summary>Start-up validation of options classes whose failures name the configuration key to fix.</summary>
public static class SettingValidation
{
    /// <summary>
    /// Data-annotation validation like <c>ValidateDataAnnotations</c>, nested settings included, whose
    /// failures name the configuration key under <paramref name="section"/> (see <see cref="SettingProblems"/>).
    /// </summary>
    public static OptionsBuilder<T> ValidateSettings<T>(this OptionsBuilder<T> builder, string section)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(section);
        builder.Services.AddSingleton<IValidateOptions<T>>(new KeyedSettingsValidator<T>(builder.Name, section));
        return builder;
    }

    private sealed class KeyedSettingsValidator<T>(string? optionsName, string section) : IValidateOptions<T>
        where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            if (optionsName is not null && name != optionsName)
            {
                return ValidateOptionsResult.Skip;
            }

            var problems = SettingProblems.Find(options, section);
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
