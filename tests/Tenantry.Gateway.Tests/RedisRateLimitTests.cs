using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using Tenantry.AspNetCore;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>Shared limits on a real redis-server started by the test: two gateway replicas draw from one bucket per tenant.</summary>
public sealed class RedisRateLimitTests : IAsyncLifetime
{
    private readonly RedisServer _redis = new();

    public Task InitializeAsync() => _redis.StartAsync();

    public async Task DisposeAsync() => await _redis.DisposeAsync();

    [Fact]
    public async Task Two_replicas_share_one_bucket_per_tenant_and_other_tenants_are_unaffected()
    {
        var options = new GatewayOptions();
        options.Plans["shared"] = new PlanLimits { RequestsPerSecond = 1, Burst = 6 };
        using var replicaA = Limiter(options);
        using var replicaB = Limiter(options);
        var noisy = Request(Guid.CreateVersion7(), "shared");
        var quiet = Request(Guid.CreateVersion7(), "shared");

        var granted = 0;
        RateLimitLease? refused = null;
        for (var i = 0; i < 12; i++)
        {
            using var lease = await (i % 2 == 0 ? replicaA : replicaB).AcquireAsync(noisy);
            if (lease.IsAcquired)
            {
                granted++;
            }
            else
            {
                refused ??= lease;
            }
        }

        // One bucket of 6 (plus at most a token or two refilled meanwhile), not 6 per replica.
        Assert.InRange(granted, 6, 8);
        Assert.NotNull(refused);
        Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var wait) && wait > TimeSpan.Zero);

        using var other = await replicaB.AcquireAsync(quiet);
        Assert.True(other.IsAcquired);
    }

    [Fact]
    public async Task The_daily_quota_is_shared_too()
    {
        var options = new GatewayOptions();
        options.Plans["quota"] = new PlanLimits { RequestsPerSecond = 1000, DailyQuota = 4 };
        using var replicaA = Limiter(options);
        using var replicaB = Limiter(options);
        var tenant = Request(Guid.CreateVersion7(), "quota");
        var results = new List<bool>();
        for (var i = 0; i < 6; i++)
        {
            using var lease = await (i % 2 == 0 ? replicaA : replicaB).AcquireAsync(tenant);
            results.Add(lease.IsAcquired);
            if (!lease.IsAcquired)
            {
                Assert.True(lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) && wait > TimeSpan.FromMinutes(1));
            }
        }

        Assert.Equal([true, true, true, true, false, false], results);
    }

    [Fact]
    public async Task Without_redis_a_replica_falls_back_to_its_own_counters()
    {
        var options = new GatewayOptions();
        // A quota, not a rate: the count does not depend on how long each failed Redis call takes.
        options.Plans["shared"] = new PlanLimits { RequestsPerSecond = 1000, DailyQuota = 2 };
        using var down = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{TenantryHost.FreePorts(1)[0]},abortConnect=false,connectTimeout=200,syncTimeout=200,asyncTimeout=200");
        using var limiter = new RedisTenantRateLimiter(down, options, TenantGateway.TenantLimiter(options), NullLogger<RedisTenantRateLimiter>.Instance);
        var tenant = Request(Guid.CreateVersion7(), "shared");
        var granted = 0;
        for (var i = 0; i < 4; i++)
        {
            using var lease = await limiter.AcquireAsync(tenant);
            granted += lease.IsAcquired ? 1 : 0;
        }

        Assert.Equal(2, granted);
    }

    private RedisTenantRateLimiter Limiter(GatewayOptions options) =>
        new(_redis.Connection, options, TenantGateway.TenantLimiter(options), NullLogger<RedisTenantRateLimiter>.Instance);

    private static DefaultHttpContext Request(Guid tenantId, string tier)
    {
        var http = new DefaultHttpContext();
        var route = new GatewayRoute(tenantId, "t" + tenantId.ToString("N")[..8], tier, IsolationModel.Pool, true, null);
        http.Items[TenantGateway.TenantItem] = new ResolvedTenant(route, new TenantContext
        {
            TenantId = tenantId, Slug = route.Slug, Tier = tier, Isolation = IsolationModel.Pool, Subject = "s", Roles = [],
        });
        return http;
    }
}
