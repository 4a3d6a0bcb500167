using System.Text.Json.Serialization;

namespace Tenantry.Billing.Plans;

/// <summary>A plan of the catalog: data, not code. Money is exact <see cref="decimal"/> in <see cref="Currency"/>.</summary>
public sealed record Plan
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Tier { get; init; }
    public required string Isolation { get; init; }
    public string Currency { get; init; } = "USD";

    /// <summary>Price per calendar month, prorated by the seconds a plan is in effect in a month.</summary>
    public decimal BasePrice { get; init; }

    public IReadOnlyList<MeteredPrice> Prices { get; init; } = [];
    public IReadOnlyList<Quota> Quotas { get; init; } = [];
    public IReadOnlyList<RateLimit> RateLimits { get; init; } = [];

    /// <summary>How the plan's tenants share background-job workers; plans stored before it get the defaults.</summary>
    public JobLimits Jobs { get; init; } = JobLimits.Default;

    /// <summary>A tenant whose share of the period's total cost is above this is flagged a heavy lifter.</summary>
    public decimal HeavyLifterShare { get; init; } = 0.5m;

    public bool Archived { get; init; }
    public long Version { get; init; }
}

/// <summary>How one meter is charged. <see cref="Included"/> units are free each month before the model applies.</summary>
public sealed record MeteredPrice
{
    public required string Meter { get; init; }

    /// <summary><c>per_unit</c>, <c>graduated</c> or <c>package</c>.</summary>
    public required string Model { get; init; }

    public decimal Included { get; init; }
    public decimal? UnitPrice { get; init; }
    public IReadOnlyList<PriceTier>? Tiers { get; init; }
    public decimal? PackageSize { get; init; }
    public decimal? PackagePrice { get; init; }
}

/// <summary>A band of a graduated price: units up to <see cref="UpTo"/> (null: no end) cost <see cref="UnitPrice"/> each, plus <see cref="FlatPrice"/> once the band is entered.</summary>
public sealed record PriceTier(decimal? UpTo, decimal UnitPrice, decimal FlatPrice = 0);

/// <summary>
/// A monthly limit on a meter: <c>hard</c> refuses past it, <c>soft</c> allows and raises an event.
/// A hard quota on <c>storage_bytes</c> caps what the tenant stores at any time: a write that would
/// take it past the limit is refused (413, <c>storage-quota-exceeded</c>) and nothing of it is kept.
/// </summary>
public sealed record Quota(string Meter, decimal Limit, string Kind);

/// <summary>
/// A request rate limit the gateway enforces for the plan's tenants: a token bucket (sustained
/// <see cref="PermitsPerSecond"/>, up to <see cref="Burst"/> at once) and requests per day
/// (<see cref="DailyQuota"/>; 0 means none). The gateway applies the one named <c>api</c>.
/// </summary>
public sealed record RateLimit(string Name, int PermitsPerSecond, int Burst, long DailyQuota = 0)
{
    public const string Api = "api";
}

/// <summary>
/// A plan's share of the background-job workers: its <see cref="Weight"/> in the weighted fair share
/// across tenants, its <see cref="Concurrency"/> (jobs leased at once: its reserved concurrency) and
/// the most jobs its queue holds (<see cref="MaxDepth"/>: an enqueue past it is refused with 429).
/// </summary>
public sealed record JobLimits(int Weight, int Concurrency, long MaxDepth)
{
    public static readonly JobLimits Default = new(1, 10, 100_000);

    /// <summary>Why the limits are out of range, or null.</summary>
    public static string? Check(JobLimits? limits) =>
        limits is null || limits.Weight is < 1 or > 1000 || limits.Concurrency is < 1 or > 10_000 || limits.MaxDepth is < 1 or > 1_000_000_000
            ? "jobs has weight 1-1000, concurrency 1-10000 and maxDepth 1-1000000000."
            : null;
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record PlanRequest
{
    public string? Id { get; init; }
    public string? Name { get; init; }
    public string? Tier { get; init; }
    public string? Isolation { get; init; }
    public string? Currency { get; init; }
    public decimal? BasePrice { get; init; }
    public List<MeteredPrice>? Prices { get; init; }
    public List<Quota>? Quotas { get; init; }
    public List<RateLimit>? RateLimits { get; init; }
    public JobLimits? Jobs { get; init; }
    public decimal? HeavyLifterShare { get; init; }
    public bool? Archived { get; init; }
}

/// <summary>The default catalog, one plan per built-in tier; written once at first start.</summary>
internal static class DefaultPlans
{
    private const decimal GiB = 1_073_741_824m;

    public static IReadOnlyList<Plan> All { get; } =
    [
        new Plan
        {
            Id = "basic", Name = "Basic", Tier = "basic", Isolation = "pool", BasePrice = 49m,
            Prices =
            [
                new MeteredPrice { Meter = "api_calls", Model = "per_unit", Included = 100_000, UnitPrice = 0.0005m },
                new MeteredPrice { Meter = "storage_bytes", Model = "package", Included = 5 * GiB, PackageSize = GiB, PackagePrice = 0.25m },
                new MeteredPrice { Meter = "active_users", Model = "per_unit", Included = 10, UnitPrice = 4m },
            ],
            Quotas = [new Quota("api_calls", 1_000_000, "hard"), new Quota("storage_bytes", 20 * GiB, "soft"), new Quota("storage_bytes", 25 * GiB, "hard")],
            RateLimits = [new RateLimit(RateLimit.Api, 50, 50, 1_000_000)],
            Jobs = new JobLimits(1, 5, 10_000),
            HeavyLifterShare = 0.25m,
        },
        new Plan
        {
            Id = "standard", Name = "Standard", Tier = "standard", Isolation = "bridge", BasePrice = 199m,
            Prices =
            [
                new MeteredPrice
                {
                    Meter = "api_calls", Model = "graduated", Included = 1_000_000,
                    Tiers = [new PriceTier(10_000_000, 0.0004m), new PriceTier(null, 0.0002m)],
                },
                new MeteredPrice { Meter = "storage_bytes", Model = "package", Included = 50 * GiB, PackageSize = GiB, PackagePrice = 0.20m },
                new MeteredPrice { Meter = "active_users", Model = "per_unit", Included = 50, UnitPrice = 3m },
            ],
            Quotas = [new Quota("api_calls", 20_000_000, "soft"), new Quota("storage_bytes", 200 * GiB, "soft"), new Quota("storage_bytes", 250 * GiB, "hard")],
            RateLimits = [new RateLimit(RateLimit.Api, 100, 100, 5_000_000)],
            Jobs = new JobLimits(2, 10, 100_000),
            HeavyLifterShare = 0.4m,
        },
        new Plan
        {
            Id = "premium", Name = "Premium", Tier = "premium", Isolation = "silo", BasePrice = 999m,
            Prices =
            [
                new MeteredPrice
                {
                    Meter = "api_calls", Model = "graduated", Included = 10_000_000,
                    Tiers = [new PriceTier(100_000_000, 0.0002m), new PriceTier(null, 0.0001m)],
                },
                new MeteredPrice { Meter = "storage_bytes", Model = "package", Included = 500 * GiB, PackageSize = 100 * GiB, PackagePrice = 15m },
                new MeteredPrice { Meter = "compute_seconds", Model = "per_unit", Included = 2_592_000, UnitPrice = 0.00005m },
            ],
            Quotas = [new Quota("storage_bytes", 2_000 * GiB, "soft"), new Quota("storage_bytes", 2_500 * GiB, "hard")],
            RateLimits = [new RateLimit(RateLimit.Api, 300, 300, 20_000_000)],
            Jobs = new JobLimits(4, 25, 1_000_000),
            HeavyLifterShare = 0.6m,
        },
    ];
}
