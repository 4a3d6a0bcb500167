namespace Tenantry.Testing;

/// <summary>How <see cref="TenantryHost"/> starts the real host. Every member has a default that suits a test.</summary>
public sealed record TenantryHostOptions
{
    public const string DefaultOperatorSecret = "tenantry-test-operator-secret-0123";

    /// <summary>
    /// Tiers, plans and clients the platform tests use, with short intervals: <c>trial</c> (2 r/s, burst 3),
    /// <c>metered</c> (quota 5 a day), a SPA public client <c>orders-spa</c>. Gateway replicas get them too.
    /// </summary>
    public static readonly IReadOnlyList<string> PlatformTestSettings =
    [
        "--Tenantry:Tiers:trial=pool",
        "--Tenantry:Tiers:metered=pool",
        "--Tenantry:Gateway:Plans:trial:RequestsPerSecond=2",
        "--Tenantry:Gateway:Plans:trial:Burst=3",
        "--Tenantry:Gateway:Plans:metered:RequestsPerSecond=100",
        "--Tenantry:Gateway:Plans:metered:DailyQuota=5",
        "--Tenantry:Gateway:Domain=tenants.test",
        "--Tenantry:Gateway:RefreshInterval=00:00:00.200",
        "--Tenantry:Operations:RetryDelay=00:00:00.050",
        "--Tenantry:Operations:PollInterval=00:00:00.100",
        "--Tenantry:Compute:CheckInterval=00:00:00.200",
        "--Tenantry:Identity:PublicClients:orders-spa:RedirectUris:0=https://spa.tenants.test/callback",
    ];

    /// <summary>The data directory; null makes a new one under the temp folder, deleted when the host is disposed.</summary>
    public string? DataDir { get; init; }

    /// <summary>Keeps the data directory after disposal even when the host made it (to look at it after a run).</summary>
    public bool KeepDataDir { get; init; }

    /// <summary>
    /// False (the default) runs the control plane alone: no gateway, shared app or dedicated instances,
    /// so nothing binds a fixed port. True adds them, each on a free port.
    /// </summary>
    public bool ApplicationPlane { get; init; }

    /// <summary>
    /// True runs the host's own <c>Program</c> in the test process (on a real Kestrel port) instead of a child
    /// process: much cheaper when a test class starts a host per test, since the code is compiled once. Control
    /// plane alone unless <see cref="ApplicationPlane"/> (then the gateway runs in the test process too, the app instances as
    /// processes of their own), settings only; there is no host process to kill, signal or measure and no output to capture.
    /// </summary>
    public bool InProcess { get; init; }

    /// <summary>
    /// The ports of an earlier start to use again (control plane, then with the application plane: gateway,
    /// shared app, first dedicated port); null picks free ones.
    /// </summary>
    public IReadOnlyList<int>? Ports { get; init; }

    public string OperatorSecret { get; init; } = DefaultOperatorSecret;

    /// <summary>The master key given to a host on a PostgreSQL store (<c>Tenantry:MasterKey</c>), which it requires.</summary>
    public const string TestMasterKey = "tenantry-tests-master-key-0123456789abcdef";

    /// <summary>The control-plane store (<c>Tenantry:Store</c>), e.g. a PostgreSQL connection string; null keeps SQLite in the data directory.</summary>
    public string? Store { get; init; }

    /// <summary>More command-line settings (<c>--Tenantry:Key=value</c>), after the ones this fixture sets.</summary>
    public IReadOnlyList<string> Settings { get; init; } = [];

    /// <summary>Environment variables for the host. Tenantry and URL variables of the test process are never passed on.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Receives each line the host writes (stderr prefixed <c>stderr: </c>) as it comes.</summary>
    public Action<string>? Output { get; init; }

    /// <summary>How long the host may take to answer <c>/healthz</c> on each of its ports.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(90);

    /// <summary>The control plane alone in the test process (<see cref="InProcess"/>), retrying and polling operations often (10 ms, 100 ms), with <paramref name="settings"/>.</summary>
    public static TenantryHostOptions ControlPlane(params IEnumerable<string> settings) => new()
    {
        InProcess = true,
        Settings = ["--Tenantry:Operations:RetryDelay=00:00:00.010", "--Tenantry:Operations:PollInterval=00:00:00.100", .. settings],
    };

    /// <summary>The whole platform (control plane, gateway, shared app, dedicated instances) with <see cref="PlatformTestSettings"/> and <paramref name="settings"/>.</summary>
    public static TenantryHostOptions Platform(params IEnumerable<string> settings) => new()
    {
        ApplicationPlane = true,
        Settings = [.. PlatformTestSettings, .. settings],
    };
}
