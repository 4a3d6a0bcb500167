using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace Tenantry.Testing;

/// <summary>
/// A private PostgreSQL server for one test fixture: <c>initdb</c> into a fresh temp directory,
/// TCP on 127.0.0.1 at a random free port (SCRAM passwords, so role passwords are really checked),
/// a unix socket inside the temp directory (trust for the superuser only), <c>fsync=off</c>.
/// Disposing stops it (<c>pg_ctl stop -m immediate</c>) and deletes the directory. Several servers
/// can run at once, in one process or many.
/// </summary>
/// <remarks>
/// initdb refuses to run as root, so a root test process runs initdb and pg_ctl as the
/// <c>postgres</c> OS user (<c>runuser -u postgres --</c>) over a directory chowned to it; that user
/// exists once Debian's <c>postgresql</c> package is installed. The binaries are found under
/// <c>/usr/lib/postgresql/&lt;newest version&gt;/bin</c>, or in <c>TENANTRY_PG_BIN</c> when set.
/// </remarks>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>Name of the bootstrap superuser, whoever runs the tests.</summary>
    public const string SuperuserName = "postgres";

    private const string DirectoryPrefix = "tenantry-pg-";
    private const int StartAttempts = 5;
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);
    private static readonly object LiveLock = new();
    private static readonly HashSet<PostgresServer> Live = [];
    private static bool s_exitHookInstalled;

    private readonly string _binDirectory;
    private readonly bool _asPostgresUser;
    private int _disposed;

    private PostgresServer(string root, string binDirectory, bool asPostgresUser, string password)
    {
        RootDirectory = root;
        _binDirectory = binDirectory;
        _asPostgresUser = asPostgresUser;
        SuperuserPassword = password;
    }

    /// <summary>Always loopback: the server listens nowhere else.</summary>
    public const string Host = "127.0.0.1";

    public int Port { get; private set; }

    public string SuperuserPassword { get; }

    /// <summary>The temp directory that holds everything: data, socket, log.</summary>
    public string RootDirectory { get; }

    public string DataDirectory => Path.Combine(RootDirectory, "data");

    public string SocketDirectory => Path.Combine(RootDirectory, "sock");

    public string LogFile => Path.Combine(RootDirectory, "server.log");

    /// <summary>Major version of the server binaries, e.g. "15".</summary>
    public string Version => Path.GetFileName(Path.GetDirectoryName(_binDirectory)) ?? "";

    /// <summary>Superuser over TCP (password) to the <c>postgres</c> database.</summary>
    public string SuperuserConnectionString => ConnectionString("postgres", SuperuserName, SuperuserPassword);

    /// <summary>Superuser over the unix socket (trust), for when TCP and SCRAM are not the point.</summary>
    public string SuperuserSocketConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = SocketDirectory,
        Port = Port,
        Database = "postgres",
        Username = SuperuserName,
    }.ConnectionString;

    /// <summary>True when initdb and pg_ctl can be found on this machine.</summary>
    public static bool IsInstalled => FindBinDirectory() is not null;

    /// <summary>A TCP connection string to this server (127.0.0.1, SCRAM).</summary>
    public string ConnectionString(string database, string user, string password)
    {
        ArgumentException.ThrowIfNullOrEmpty(database);
        ArgumentException.ThrowIfNullOrEmpty(user);
        return new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Database = database,
            Username = user,
            Password = password,
            Timeout = 15,
        }.ConnectionString;
    }

    /// <summary>The superuser's TCP connection string to <paramref name="database"/>.</summary>
    public string SuperuserConnectionStringFor(string database) => ConnectionString(database, SuperuserName, SuperuserPassword);

    /// <summary>Runs SQL as the superuser (unpooled, so nothing lingers when a database is dropped).</summary>
    public async Task ExecuteAsync(string sql, string database = "postgres", CancellationToken cancellationToken = default)
    {
        var builder = new NpgsqlConnectionStringBuilder(SuperuserConnectionStringFor(database)) { Pooling = false };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Runs initdb into a new temp directory and starts the server on a free loopback port.</summary>
    public static Task<PostgresServer> StartAsync(CancellationToken cancellationToken = default) => StartAsync([], cancellationToken);

    /// <summary>The same, with <paramref name="settings"/> (<c>name = value</c> lines) added to postgresql.conf after the fixture's own.</summary>
    public static async Task<PostgresServer> StartAsync(IReadOnlyList<string> settings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found. Install them: `apt-get install -y postgresql` " +
            "(or set TENANTRY_PG_BIN to the folder holding initdb).");
        var asPostgres = IsRoot();
        var tempRoot = TempRoot();
        SweepAbandoned(tempRoot, bin, asPostgres);

        var root = Path.Combine(tempRoot, DirectoryPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        var password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var server = new PostgresServer(root, bin, asPostgres, password);
        Track(server, add: true);
        try
        {
            await server.InitializeAsync(settings, cancellationToken);
            await server.StartOnFreePortAsync(cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Track(this, add: false);
        await StopAndDeleteAsync(RootDirectory, _binDirectory, _asPostgresUser);
    }

    /// <summary>The newest PostgreSQL bin folder on this machine, or null.</summary>
    public static string? FindBinDirectory()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("TENANTRY_PG_BIN");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return File.Exists(Path.Combine(fromEnvironment, "initdb")) ? fromEnvironment : null;
        }

        const string debianRoot = "/usr/lib/postgresql";
        if (!Directory.Exists(debianRoot))
        {
            return null;
        }

        return Directory.EnumerateDirectories(debianRoot)
            .Select(d => (Dir: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : -1))
            .Where(x => x.Version >= 0 && File.Exists(Path.Combine(x.Dir, "initdb")) && File.Exists(Path.Combine(x.Dir, "pg_ctl")))
            .OrderByDescending(x => x.Version)
            .Select(x => x.Dir)
            .FirstOrDefault();
    }

    private async Task InitializeAsync(IReadOnlyList<string> settings, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(RootDirectory);
        Directory.CreateDirectory(SocketDirectory);
        File.WriteAllText(Path.Combine(RootDirectory, "owner.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var passwordFile = Path.Combine(RootDirectory, "pwfile");
        File.WriteAllText(passwordFile, SuperuserPassword + "\n");
        if (_asPostgresUser)
        {
            await RunAsync("chown", ["-R", "postgres:postgres", RootDirectory], cancellationToken);
        }

        await RunPostgresToolAsync(
            "initdb",
            ["-D", DataDirectory, "-U", SuperuserName, "--pwfile", passwordFile, "-E", "UTF8", "--locale=C",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"],
            cancellationToken);
        File.Delete(passwordFile);

        // Root overwrites files postgres owns; overwriting keeps their owner, new files are world-readable.
        File.WriteAllText(Path.Combine(DataDirectory, "pg_hba.conf"), """
            # Written by Tenantry.Testing: the superuser trusts the private socket, everyone else proves a password.
            local   all   postgres                 trust
            local   all   all                      scram-sha-256
            host    all   all        127.0.0.1/32  scram-sha-256

            """);
        File.AppendAllText(Path.Combine(DataDirectory, "postgresql.conf"), $"""

            # Tenantry.Testing: a private, throwaway server.
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '{SocketDirectory}'
            password_encryption = 'scram-sha-256'
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            max_connections = 300
            shared_buffers = 64MB
            max_wal_size = 1GB
            log_min_messages = warning
            log_min_error_statement = panic
            include_if_exists = 'port.conf'

            """ + string.Concat(settings.Select(line => line + "\n")));
    }

    private async Task StartOnFreePortAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            Port = FreeLoopbackPort();
            await File.WriteAllTextAsync(Path.Combine(DataDirectory, "port.conf"), $"port = {Port}\n", cancellationToken);
            try
            {
                await RunPostgresToolAsync("pg_ctl", ["-D", DataDirectory, "-l", LogFile, "-w", "-t", "60", "start"], cancellationToken);
                return;
            }
            catch (InvalidOperationException) when (attempt < StartAttempts && PortWasTaken())
            {
                // Another process took the port between our probe and the server's bind: pick another.
            }
        }
    }

    private bool PortWasTaken()
    {
        try
        {
            var log = File.ReadAllText(LogFile);
            return log.Contains("could not bind", StringComparison.OrdinalIgnoreCase) ||
                   log.Contains("already in use", StringComparison.OrdinalIgnoreCase);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private Task RunPostgresToolAsync(string tool, IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        RunToolAsync(_binDirectory, _asPostgresUser, tool, arguments, LogFile, cancellationToken);

    private static Task RunToolAsync(string bin, bool asPostgres, string tool, IReadOnlyList<string> arguments, string? logFile, CancellationToken cancellationToken)
    {
        var exe = Path.Combine(bin, tool);
        return asPostgres
            ? RunAsync("runuser", ["-u", "postgres", "--", exe, .. arguments], cancellationToken, logFile)
            : RunAsync(exe, arguments, cancellationToken, logFile);
    }

    private static async Task RunAsync(string fileName, IReadOnlyList<string> arguments, CancellationToken cancellationToken, string? logFile = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        if (process.ExitCode != 0)
        {
            var message = new StringBuilder()
                .Append(CultureInfo.InvariantCulture, $"`{fileName} {string.Join(' ', arguments)}` exited with {process.ExitCode}.")
                .AppendLine().Append(await stdout).Append(await stderr);
            if (logFile is not null && File.Exists(logFile))
            {
                var log = await File.ReadAllTextAsync(logFile, CancellationToken.None);
                message.AppendLine().Append("server log: ").Append(log.Length > 4000 ? log[^4000..] : log);
            }

            throw new InvalidOperationException(message.ToString());
        }
    }

    private static async Task StopAndDeleteAsync(string root, string bin, bool asPostgres)
    {
        var data = Path.Combine(root, "data");
        if (File.Exists(Path.Combine(data, "postmaster.pid")))
        {
            try
            {
                await RunToolAsync(bin, asPostgres, "pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], null, CancellationToken.None);
            }
            catch (InvalidOperationException)
            {
                // Already stopped (or never started): deleting the directory is all that is left.
            }
        }

        for (var attempt = 0; attempt < 5 && Directory.Exists(root); attempt++)
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Stops and deletes servers left behind by test processes that died without disposing them.</summary>
    private static void SweepAbandoned(string tempRoot, string bin, bool asPostgres)
    {
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateDirectories(tempRoot, DirectoryPrefix + "*").ToList();
        }
        catch (IOException)
        {
            return;
        }

        foreach (var dir in candidates)
        {
            try
            {
                var pidFile = Path.Combine(dir, "owner.pid");
                if (!File.Exists(pidFile) ||
                    !int.TryParse(File.ReadAllText(pidFile), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) ||
                    Directory.Exists($"/proc/{pid}"))
                {
                    continue;
                }

                StopAndDeleteAsync(dir, bin, asPostgres).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // Another sweeper got there first, or it is not ours to clean: leave it.
            }
        }
    }

    private static void Track(PostgresServer server, bool add)
    {
        lock (LiveLock)
        {
            if (add)
            {
                Live.Add(server);
                if (!s_exitHookInstalled)
                {
                    s_exitHookInstalled = true;
                    AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAllOnExit();
                }
            }
            else
            {
                Live.Remove(server);
            }
        }
    }

    private static void StopAllOnExit()
    {
        PostgresServer[] servers;
        lock (LiveLock)
        {
            servers = [.. Live];
        }

        foreach (var server in servers)
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string TempRoot()
    {
        // A unix socket path is at most 107 bytes, so a long TMPDIR falls back to /tmp.
        var temp = Path.GetTempPath().TrimEnd('/');
        return temp.Length <= 40 && !temp.Contains('\'', StringComparison.Ordinal) ? temp : "/tmp";
    }

    private static bool IsRoot()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var effective = line.Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries)[2];
                    return effective == "0";
                }
            }
        }
        catch (IOException)
        {
        }

        return string.Equals(Environment.UserName, "root", StringComparison.Ordinal);
    }
}
