using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane;

namespace Tenantry.Host;

/// <summary>Exit codes of the host, one per kind of start-up failure (listed in <c>--help</c>).</summary>
internal static class ExitCodes
{
    public const int BadSetting = 2;
    public const int DataDirectoryInUse = 3;
    public const int PortUnavailable = 4;
    public const int StoreUnreachable = 5;
    public const int DataDirectoryNotWritable = 6;
}

/// <summary>A start-up failure as the operator reads it: one line naming the setting, and the exit code.</summary>
internal sealed record StartupFailure(int ExitCode, string Message);

/// <summary>
/// Turns what keeps the host from starting into <see cref="StartupFailure"/>: bad settings (values that do
/// not convert or fail validation), an unreachable store, an unusable data dir, a port taken or privileged.
/// Anything else is a defect and stays an unhandled exception.
/// </summary>
internal static partial class HostStartup
{
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";
    private static volatile bool s_started;

    /// <summary>
    /// Until the host has started, the generic host's own error logs (its stack-traced "Hosting failed to
    /// start") are left out: the failure is reported once, by <see cref="Explain"/> or as an unhandled exception.
    /// </summary>
    public static void QuietStartFailures(this ILoggingBuilder logging) =>
        logging.AddFilter(HostCategory, level => s_started || level < LogLevel.Error);

    /// <summary>Called once the host listens: from then on the generic host logs its errors as usual.</summary>
    public static void Started() => s_started = true;

    /// <summary>
    /// Files and folders this process creates are its owner's alone (umask 077): control.db and its
    /// -wal/-shm, keys, tenant files, mails, exports, logs, and those of the app instances it starts.
    /// </summary>
    /// <remarks>
    /// Only when this program is the process: a test process that hosts it in-process (WebApplicationFactory)
    /// keeps its own umask, as the files it creates for others (a PostgreSQL server it starts) must stay readable.
    /// </remarks>
    public static void RestrictNewFiles()
    {
        if (!OperatingSystem.IsWindows() && System.Reflection.Assembly.GetEntryAssembly() == typeof(HostStartup).Assembly)
        {
            _ = SetUmask(0b000_111_111);
        }
    }

    public static StartupFailure? Explain(Exception exception, PortOptions ports)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(ports);
        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case OptionsValidationException invalid:
                    return new StartupFailure(ExitCodes.BadSetting, string.Join(Environment.NewLine, invalid.Failures.Select(OneLine)));
                case TenantryStartupException startup:
                    return new StartupFailure(
                        startup.Problem switch
                        {
                            StartupProblem.DataDirectoryInUse => ExitCodes.DataDirectoryInUse,
                            StartupProblem.Port => ExitCodes.PortUnavailable,
                            StartupProblem.Store => ExitCodes.StoreUnreachable,
                            StartupProblem.DataDirectory => ExitCodes.DataDirectoryNotWritable,
                            _ => ExitCodes.BadSetting,
                        },
                        OneLine(startup.Message));
                case InvalidOperationException when ConversionFailure().Match(ex.Message) is { Success: true } conversion:
                    return new StartupFailure(
                        ExitCodes.BadSetting,
                        $"{conversion.Groups["key"].Value}: '{OneLine(conversion.Groups["value"].Value)}' is not {Expected(conversion.Groups["type"].Value)}");
                case IOException or SocketException or UnauthorizedAccessException when PortProblem(exception, ports) is { } port:
                    return port;
            }
        }

        return null;
    }

    /// <summary>
    /// A listener that could not bind: the port is in use, or below 1024 without the privilege. Kestrel
    /// reports <c>Failed to bind to address http://127.0.0.1:PORT</c> with the socket error inside.
    /// </summary>
    private static StartupFailure? PortProblem(Exception exception, PortOptions ports)
    {
        var chain = Chain(exception).ToList();
        var bind = chain.Select(e => BindFailure().Match(e.Message)).FirstOrDefault(m => m.Success);
        var socket = chain.OfType<SocketException>().FirstOrDefault();
        var inUse = chain.Any(e => e.GetType().Name == "AddressInUseException" || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            || socket?.SocketErrorCode == SocketError.AddressAlreadyInUse;
        var denied = socket?.SocketErrorCode == SocketError.AccessDenied
            || chain.Any(e => e is UnauthorizedAccessException || e.Message.Contains("permission denied", StringComparison.OrdinalIgnoreCase));
        if (bind is null || !(inUse || denied))
        {
            return null;
        }

        var port = int.Parse(bind.Groups["port"].Value, CultureInfo.InvariantCulture);
        var (key, flag) = port == ports.ControlPlane ? ("Tenantry:Ports:ControlPlane", "--port")
            : port == ports.Gateway ? ("Tenantry:Ports:Gateway", "--gateway-port")
            : port == ports.SharedApp ? ("Tenantry:Ports:SharedApp", "--Tenantry:Ports:SharedApp")
            : ("Tenantry:Ports", "--port / --gateway-port");
        var message = inUse
            ? $"{key}: port {port} is in use; start with {flag} <other port>."
            : $"{key}: port {port} needs privileges this process lacks (ports below 1024 are reserved); start with {flag} <port above 1023>.";
        return new StartupFailure(ExitCodes.PortUnavailable, message);
    }

    private static IEnumerable<Exception> Chain(Exception exception)
    {
        for (var ex = exception; ex is not null; ex = ex.InnerException)
        {
            yield return ex;
            if (ex is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions.SelectMany(Chain))
                {
                    yield return inner;
                }
            }
        }
    }

    private static string Expected(string type) => type switch
    {
        "System.TimeSpan" => "a time span (e.g. 00:00:30)",
        "System.Int32" or "System.Int64" or "System.Int16" => "a whole number",
        "System.Double" or "System.Decimal" or "System.Single" => "a number",
        "System.Boolean" => "true or false",
        "System.Uri" => "a URI",
        _ => $"a valid {type[(type.LastIndexOf('.') + 1)..]}",
    };

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    [GeneratedRegex(@"Failed to convert configuration value '(?<value>.*)' at '(?<key>[^']+)' to type '(?<type>[^']+)'", RegexOptions.Singleline)]
    private static partial Regex ConversionFailure();

    [GeneratedRegex(@"Failed to bind to address \S+?:(?<port>\d+)")]
    private static partial Regex BindFailure();

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint SetUmask(uint mask);
}
