using System.Collections;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;

namespace Tenantry;

/// <summary>
/// Checks a bound settings object against its data annotations, nested objects, lists and
/// dictionaries included, and says what is wrong in the operator's words: one line per value,
/// naming its configuration key (<c>Tenantry:Operations:MaxParallel: -1 is not between 1 and 64</c>).
/// </summary>
public static class SettingProblems
{
    private const int MaxDepth = 8;

    /// <summary>Every problem of <paramref name="settings"/>, bound from the configuration section <paramref name="section"/>.</summary>
    public static IReadOnlyList<string> Find(object settings, string section)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentException.ThrowIfNullOrEmpty(section);
        var problems = new List<string>();
        Walk(settings, section, problems, 0);
        return problems;
    }

    private static void Walk(object settings, string path, List<string> problems, int depth)
    {
        foreach (var property in settings.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (!property.CanRead || property.GetIndexParameters().Length > 0)
            {
                continue;
            }

            var key = $"{path}:{property.Name}";
            object? value;
            try
            {
                value = property.GetValue(settings);
            }
            catch (TargetInvocationException)
            {
                // A value computed from other settings (a full path from an empty folder name, say):
                // the settings it is made of are checked and named on their own.
                continue;
            }

            foreach (var rule in property.GetCustomAttributes<ValidationAttribute>(inherit: true))
            {
                if (!rule.IsValid(value))
                {
                    problems.Add($"{key}: {Describe(rule, value, property.Name)}");
                }
            }

            if (value is null || depth >= MaxDepth)
            {
                continue;
            }

            if (IsSettingsObject(value.GetType()))
            {
                Walk(value, key, problems, depth + 1);
            }
            else if (value is IDictionary dictionary)
            {
                foreach (DictionaryEntry entry in dictionary)
                {
                    if (entry.Value is { } item && IsSettingsObject(item.GetType()))
                    {
                        Walk(item, $"{key}:{entry.Key}", problems, depth + 1);
                    }
                }
            }
            else if (value is IList list)
            {
                for (var i = 0; i < list.Count; i++)
                {
                    if (list[i] is { } item && IsSettingsObject(item.GetType()))
                    {
                        Walk(item, $"{key}:{i}", problems, depth + 1);
                    }
                }
            }
        }
    }

    /// <summary>A settings class of Tenantry's own (not a string, URI, collection or framework type).</summary>
    private static bool IsSettingsObject(Type type) =>
        type.IsClass && type != typeof(string) && !typeof(IEnumerable).IsAssignableFrom(type)
        && type.Assembly.GetName().Name?.StartsWith("Tenantry", StringComparison.Ordinal) == true;

    private static string Describe(ValidationAttribute rule, object? value, string name) => rule switch
    {
        RequiredAttribute => "a value is required",
        RangeAttribute range => $"{Show(value)} is not between {Convert.ToString(range.Minimum, CultureInfo.InvariantCulture)} and {Convert.ToString(range.Maximum, CultureInfo.InvariantCulture)}",
        MinLengthAttribute min => $"must be at least {min.Length} long",
        MaxLengthAttribute max => $"must be at most {max.Length} long",
        _ => rule.FormatErrorMessage(name),
    };

    private static string Show(object? value) => value switch
    {
        null => "nothing",
        string s => $"'{s}'",
        TimeSpan t => t.ToString("c", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
