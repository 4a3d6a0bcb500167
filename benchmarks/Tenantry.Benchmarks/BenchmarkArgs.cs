using System.Globalization;

namespace Tenantry.Benchmarks;

/// <summary>The benchmarks' numeric options (<c>--name value</c>).</summary>
internal static class BenchmarkArgs
{
    /// <summary>The integer after <paramref name="name"/>, or <paramref name="fallback"/> when the option is absent.</summary>
    public static int Int(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
