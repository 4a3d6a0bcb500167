using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Tenantry.Gateway;

/// <summary>
/// The per-tenant token bucket and daily quota with their state in Redis, so every gateway replica
/// draws from the same bucket. One Lua script per request does the refill, the quota and the take
/// atomically, on the Redis server's clock. If Redis cannot be reached the replica falls back to
/// its in-process limiter (each replica then limits on its own) rather than refusing all traffic.
/// </summary>
internal sealed partial class RedisTenantRateLimiter(
    IConnectionMultiplexer redis,
    GatewayOptions options,
    PartitionedRateLimiter<HttpContext> fallback,
    ILogger<RedisTenantRateLimiter> logger) : PartitionedRateLimiter<HttpContext>
{
    // KEYS[1]: bucket hash, KEYS[2]: quota counter prefix. ARGV: rate/s, burst, daily quota (0 = none).
    // Returns {1, 0} when granted, {0, retry-after ms} when refused, {2, retry-after ms} when the quota is used up.
    private const string Script = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local rate = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local quota = tonumber(ARGV[3])
        local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(b[1])
        local ts = tonumber(b[2])
        if tokens == nil then tokens = burst; ts = now end
        tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
        local ttl = math.ceil(burst / rate * 1000) + 1000
        if tokens < 1 then
          redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
          redis.call('PEXPIRE', KEYS[1], ttl)
          return {0, math.ceil((1 - tokens) * 1000 / rate)}
        end
        if quota > 0 then
          local day = math.floor(now / 86400000)
          local qkey = KEYS[2] .. ':' .. day
          local used = tonumber(redis.call('GET', qkey) or '0')
          if used >= quota then
            return {2, (day + 1) * 86400000 - now}
          end
          redis.call('INCR', qkey)
          redis.call('PEXPIRE', qkey, 90000000)
        end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', now)
        redis.call('PEXPIRE', KEYS[1], ttl)
        return {1, 0}
        """;

    public override RateLimiterStatistics? GetStatistics(HttpContext resource) => null;

    protected override RateLimitLease AttemptAcquireCore(HttpContext resource, int permitCount) =>
        AcquireAsyncCore(resource, permitCount, CancellationToken.None).AsTask().GetAwaiter().GetResult();

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(HttpContext resource, int permitCount, CancellationToken cancellationToken)
    {
        var route = resource.Resolved().Route;
        var limits = options.LimitsFor(route);
        var prefix = $"{{tenantry:rl:{route.TenantId}}}";
        try
        {
            var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(
                Script,
                [prefix + ":bucket", prefix + ":quota"],
                [limits.RequestsPerSecond, limits.EffectiveBurst, limits.DailyQuota]))!;
            var verdict = (int)result[0];
            return verdict == 1 ? Lease.Granted : new Lease(TimeSpan.FromMilliseconds((long)result[1]));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.Unavailable(logger, route.TenantId, ex);
            return await fallback.AcquireAsync(resource, permitCount, cancellationToken);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            fallback.Dispose();
        }

        base.Dispose(disposing);
    }

    private sealed class Lease(TimeSpan? retryAfter) : RateLimitLease
    {
        public static readonly Lease Granted = new(null);

        public override bool IsAcquired => retryAfter is null;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = retryAfter is { } wait && metadataName == MetadataName.RetryAfter.Name ? wait : null;
            return metadata is not null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Redis did not answer for tenant {TenantId}'s rate limit; using this replica's own counters")]
        public static partial void Unavailable(ILogger logger, Guid tenantId, Exception exception);
    }
}

internal static class RedisRateLimitsExtensions
{
    /// <summary>Rate limits shared by every gateway replica through the Redis of <c>Tenantry:Gateway:Redis</c>; used when it is set.</summary>
    public static IServiceCollection AddRedisRateLimits(this IServiceCollection services)
    {
        services.TryAddSingleton(sp => new RedisConnection(sp.GetRequiredService<IOptions<GatewayOptions>>().Value.Redis!));
        return services;
    }
}
