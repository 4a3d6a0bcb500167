namespace Tenantry.Benchmarks;

/// <summary>Entry point: one subcommand per benchmark.</summary>
internal static class BenchmarkProgram
{
    private const string Help = """
        Tenantry benchmarks: each one starts the real Tenantry host (Tenantry.Host.dll from this
        program's folder) as a child process on a free loopback port with a temporary data directory,
        drives it over HTTP, prints a markdown report to stdout and stops the host.

        Usage: dotnet run -c Release --project benchmarks/Tenantry.Benchmarks -- <benchmark> [options]

        Benchmarks:
          onboarding   time from POST /v1/tenants to an active tenant, for many basic (pool) tenants
                       created concurrently, against a one-at-a-time baseline from the same run
          console      the API calls behind the web console's pages (first page, filtered searches,
                       fleet overview) with 10,000 tenants, against the same calls with 100 tenants
          console-pages every call of the console's pages (fleet, tenants, tenant, health, worst, costs,
                       invoices, plans, policies, audit) with 10,000 tenants and 30 days of per-minute
                       health for 100 of them seeded into the store, against the same calls with 100 tenants
          webhooks     events committed at a steady rate, each delivered to 100 webhook endpoints on a
                       loopback receiver: deliveries/s and event-committed → received p50/p99
          rollout      a release rolled out in health-gated waves across 50 tenants while a load generator
                       sends requests through the gateway, against a no-gate update in the same run, and a
                       broken release stopped at its canary wave
          tier-move    a pool tenant with 1,000,000 orders moved to its own database (basic → premium) on a
                       private PostgreSQL server while it writes through the gateway, against pg_dump of its
                       rows and a restore into a new database
          replicas     onboarding throughput (mixed tiers) with two control-plane replicas on one PostgreSQL
                       store against one replica on the same store, in the same run
          failover     two replicas (each a compute node) on PostgreSQL and a gateway replica: time from kill -9 of
                       one to the first operation step the other commits and to the first 2xx through the gateway
                       from a silo tenant whose instance was on it, default node timings against slow ones

        Run '<benchmark> --help' for its options.
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "--help" or "-h" or "-?" or "help")
        {
            Console.WriteLine(Help);
            return args.Length == 0 ? 2 : 0;
        }

        switch (args[0])
        {
            case "onboarding":
                return await OnboardingBenchmark.MainAsync(args[1..]);
            case "console":
                return await ConsoleBenchmark.MainAsync(args[1..]);
            case "console-pages":
                return await ConsolePagesBenchmark.MainAsync(args[1..]);
            case "webhooks":
                return await WebhookBenchmark.MainAsync(args[1..]);
            case "rollout":
                return await RolloutBenchmark.MainAsync(args[1..]);
            case "tier-move":
                return await TierMoveBenchmark.MainAsync(args[1..]);
            case "replicas":
                return await ReplicaOnboardingBenchmark.MainAsync(args[1..]);
            case "failover":
                return await FailoverBenchmark.MainAsync(args[1..]);
            default:
                await Console.Error.WriteLineAsync($"Unknown benchmark '{args[0]}'.");
                await Console.Error.WriteLineAsync(Help);
                return 2;
        }
    }
}
