using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Microsoft.Net.Http.Headers;
using Tenantry.AspNetCore;
using Yarp.ReverseProxy.Forwarder;

namespace Tenantry.Gateway;

/// <summary>
/// The tenant-aware gateway: token → tenant → checks → per-tenant limits → forward. Every step
/// that cannot establish an active tenant ends the request; nothing is forwarded without one.
/// </summary>
public static class TenantGateway
{
    internal const string TenantItem = "tenantry.gateway.tenant";

    /// <summary>The request header by which a client may name its tenant (id or slug).</summary>
    public const string TenantHeader = "X-Tenant-Id";

    /// <summary>The header family the gateway owns: whatever a client sends under it is removed before forwarding.</summary>
    internal const string ContextHeaderPrefix = "X-Tenant-";

    /// <summary>The <c>typ</c> header of a JWT access token (RFC 9068 §2.1), with and without its media-type prefix.</summary>
    internal static readonly string[] AccessTokenTypes = ["at+jwt", "application/at+jwt"];

    /// <summary>Registers the gateway; the routing table comes from <typeparamref name="TSource"/>.</summary>
    public static IServiceCollection AddTenantryGateway<TSource>(this IServiceCollection services)
        where TSource : class, IGatewayRouteSource
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<IGatewayRouteSource, TSource>();
        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.Section).ValidateSettings(GatewayOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<GatewayRouteTable>();
        services.TryAddSingleton<GatewayRouteRefresher>();
        services.AddHostedService(sp => sp.GetRequiredService<GatewayRouteRefresher>());
        services.TryAddSingleton(sp => TenantContextSigningKey.LoadOrCreate(sp.GetRequiredService<IOptions<GatewayOptions>>().Value.ContextSigningKeyFile!));
        services.TryAddSingleton<TenantContextSigner>();
        services.AddHttpForwarder();
        services.TryAddSingleton<TenantForwarder>();
        services.AddProblemDetails();

        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme).Configure<IOptions<GatewayOptions>, TimeProvider>((jwt, gateway, time) =>
        {
            jwt.TokenHandlers.Clear();
            jwt.TokenHandlers.Add(new CachingTokenHandler(time));
            var authority = gateway.Value.Authority!;
            jwt.Authority = authority.ToString();
            jwt.RequireHttpsMetadata = authority.Scheme == Uri.UriSchemeHttps || !authority.IsLoopback;
            jwt.MapInboundClaims = false;
            jwt.RefreshOnIssuerKeyNotFound = true;
            // After a key rotation the first token of the new key has an unknown kid: the JWKS is read again then, at most
            // once every ten seconds, so the new key is accepted within seconds, not after the default five minutes.
            jwt.RefreshInterval = TimeSpan.FromSeconds(10);
            jwt.TokenValidationParameters = new TokenValidationParameters
            {
                // Tenant tokens are for the application plane as a whole; the tenant claim decides where they go.
                ValidateAudience = false,
                ValidateIssuer = true,
                ValidateLifetime = true,
                RequireExpirationTime = true,
                RequireSignedTokens = true,
                ValidAlgorithms = [SecurityAlgorithms.RsaSha256],
                // Access tokens only (RFC 9068): an id_token is signed by the same key and would otherwise pass for one.
                ValidTypes = AccessTokenTypes,
                ClockSkew = TimeSpan.FromSeconds(30),
                NameClaimType = "sub",
                RoleClaimType = "role",
            };
        });

        services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.OnRejected = RateLimitRejected;
        });
        services.AddOptions<RateLimiterOptions>().Configure<IServiceProvider>((limiter, sp) =>
        {
            var gateway = sp.GetRequiredService<IOptions<GatewayOptions>>().Value;
            var local = TenantLimiter(gateway);
            limiter.GlobalLimiter = string.IsNullOrWhiteSpace(gateway.Redis)
                ? local
                : new RedisTenantRateLimiter(
                    sp.GetRequiredService<RedisConnection>().Multiplexer, gateway, local, sp.GetRequiredService<ILogger<RedisTenantRateLimiter>>());
        });
        services.AddRedisRateLimits();
        services.AddTenantHealthRecording();
        return services;
    }

    /// <summary>The gateway pipeline; it answers every request (a terminal middleware).</summary>
    public static WebApplication UseTenantryGateway(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseTenantHealthRecording();
        app.UseMiddleware<GatewayHealthMiddleware>();
        app.UseAuthentication();
        app.UseMiddleware<TenantResolutionGatewayMiddleware>();
        app.UseRateLimiter();
        var forwarder = app.Services.GetRequiredService<TenantForwarder>();
        app.Run(forwarder.ForwardAsync);
        return app;
    }

    internal static ResolvedTenant Resolved(this HttpContext http) => (ResolvedTenant)http.Items[TenantItem]!;

    /// <summary>A token bucket per tenant (rate and burst), chained with a daily window (quota), sized by the tenant's plan.</summary>
    internal static PartitionedRateLimiter<HttpContext> TenantLimiter(GatewayOptions options)
    {
        // Partitioned by tenant and limits: a plan change gives the tenant a bucket of the new size.
        var buckets = PartitionedRateLimiter.Create<HttpContext, (Guid, int, int)>(http =>
        {
            var tenant = http.Resolved();
            var limits = options.LimitsFor(tenant.Route);
            return RateLimitPartition.Get(
                (tenant.Route.TenantId, limits.RequestsPerSecond, limits.EffectiveBurst),
                key => new SmoothTokenBucket(key.Item2, key.Item3));
        });
        var quotas = PartitionedRateLimiter.Create<HttpContext, (Guid, long)>(http =>
        {
            var tenant = http.Resolved();
            var quota = options.LimitsFor(tenant.Route).DailyQuota;
            return quota == 0
                ? RateLimitPartition.GetNoLimiter((tenant.Route.TenantId, quota))
                : RateLimitPartition.GetFixedWindowLimiter((tenant.Route.TenantId, quota), _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = (int)quota,
                    Window = TimeSpan.FromDays(1),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
        });
        return PartitionedRateLimiter.CreateChained(buckets, quotas);
    }

    private static async ValueTask RateLimitRejected(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var http = context.HttpContext;
        var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        var quota = retryAfter > TimeSpan.FromMinutes(1);
        var tenant = http.Resolved();
        GatewayLog.Limited(http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(TenantGateway)), tenant.Route.TenantId, quota ? "daily quota" : "rate limit");
        http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        await GatewayProblems.WriteAsync(
            http,
            StatusCodes.Status429TooManyRequests,
            quota ? "quota-exceeded" : "rate-limited",
            quota ? "The tenant's daily request quota is used up." : "Too many requests for this tenant.",
            $"The {tenant.Route.Plan ?? tenant.Route.Tier} plan allows this tenant fewer requests; retry after {seconds} s.");
    }
}

/// <summary>The gateway's Redis connection (only made when <see cref="GatewayOptions.Redis"/> is set).</summary>
internal sealed class RedisConnection(string configuration) : IDisposable
{
    private readonly Lazy<StackExchange.Redis.ConnectionMultiplexer> _multiplexer = new(() =>
    {
        var options = StackExchange.Redis.ConfigurationOptions.Parse(configuration);
        // Start even while Redis is down; the limiter falls back to local counters until it answers.
        options.AbortOnConnectFail = false;
        return StackExchange.Redis.ConnectionMultiplexer.Connect(options);
    });

    public StackExchange.Redis.IConnectionMultiplexer Multiplexer => _multiplexer.Value;

    public void Dispose()
    {
        if (_multiplexer.IsValueCreated)
        {
            _multiplexer.Value.Dispose();
        }
    }
}

/// <summary>The tenant a request was resolved to.</summary>
internal sealed record ResolvedTenant(GatewayRoute Route, TenantContext Context);

internal static class GatewayProblems
{
    public static Task WriteAsync(HttpContext http, int status, string kind, string title, string detail)
    {
        http.Response.StatusCode = status;
        return http.Response.WriteAsJsonAsync(
            new ProblemDetails { Status = status, Type = "https://tenantry.dev/problems/" + kind, Title = title, Detail = detail },
            (System.Text.Json.JsonSerializerOptions?)null,
            "application/problem+json");
    }
}

/// <summary>Answers the gateway's own health probe (before authentication).</summary>
internal sealed class GatewayHealthMiddleware(RequestDelegate next, GatewayRouteTable table)
{
    public Task InvokeAsync(HttpContext http)
    {
        if (http.Request.Path.Equals("/healthz", StringComparison.Ordinal) && HttpMethods.IsGet(http.Request.Method))
        {
            return http.Response.WriteAsJsonAsync(new { status = "healthy", routes = table.Count, loadedAt = table.LoadedAt });
        }

        return next(http);
    }
}

internal sealed class TenantResolutionGatewayMiddleware(
    RequestDelegate next,
    GatewayRouteTable table,
    GatewayRouteRefresher refresher,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    IConfiguration configuration,
    ILogger<TenantResolutionGatewayMiddleware> logger)
{
    private const string ReloadedKey = "tenantry.gateway.routes-reloaded";

    private readonly GatewayOptions _options = options.Value;

    /// <summary>Tag the request's metrics with its tenant (Tenantry:Telemetry:TenantTags, on unless turned off).</summary>
    private readonly bool _tenantTags = configuration.GetValue("Tenantry:Telemetry:TenantTags", true);

    private readonly string? _hostSuffix = string.IsNullOrEmpty(options.Value.Domain) ? null : "." + options.Value.Domain;

    /// <summary>A signed token for a tenant the table does not know: reload once (shared with concurrent callers), then decide.</summary>
    private async Task RetryAfterReloadAsync(HttpContext http)
    {
        http.Items[ReloadedKey] = true;
        await refresher.RefreshNowAsync(http.RequestAborted);
        await InvokeAsync(http);
    }

    public Task InvokeAsync(HttpContext http)
    {
        var user = http.User;
        if (user.Identity?.IsAuthenticated != true)
        {
            var presented = http.Request.Headers.Authorization.Count > 0;
            http.Response.Headers.WWWAuthenticate = presented ? "Bearer error=\"invalid_token\"" : "Bearer";
            return GatewayProblems.WriteAsync(http, StatusCodes.Status401Unauthorized, "unauthorized", "A valid tenant token is required.",
                presented ? "The bearer token is not a valid access token (type, signature, issuer, algorithm or lifetime)." : "Send Authorization: Bearer <token>.");
        }

        if (!Guid.TryParse(user.FindFirst("tenant_id")?.Value, out var tenantId))
        {
            return GatewayProblems.WriteAsync(http, StatusCodes.Status403Forbidden, "not-a-tenant-token", "The token names no tenant.",
                "Tenant traffic needs a tenant user's or tenant client's token.");
        }

        if (_tenantTags && !http.Items.ContainsKey(ReloadedKey))
        {
            // On http.server.request.duration: per-tenant rates, latencies and refusals (401 aside) from the built-in
            // metric. The id comes from a validated token, so only real tenants make series.
            http.Features.Get<IHttpMetricsTagsFeature>()?.Tags.Add(new("tenant.id", tenantId.ToString()));
        }

        if (time.GetUtcNow() - table.LoadedAt > _options.MaxStaleness)
        {
            GatewayLog.Stale(logger, tenantId);
            return GatewayProblems.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, "routing-unavailable", "The routing table is out of date.",
                "The gateway cannot confirm the tenant is active; try again shortly.");
        }

        var route = table.Find(tenantId);
        if (route is null && !http.Items.ContainsKey(ReloadedKey))
        {
            return RetryAfterReloadAsync(http);
        }

        if (route is null || !route.Active)
        {
            GatewayLog.Inactive(logger, tenantId);
            return GatewayProblems.WriteAsync(http, StatusCodes.Status403Forbidden, "tenant-inactive", "The tenant is not active.",
                "The tenant is suspended, offboarded or not provisioned.");
        }

        if (route.Frozen && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method))
        {
            // A tier change's freeze lasts about a second: the client retries after it, reads are served meanwhile.
            http.Response.Headers.RetryAfter = "1";
            return GatewayProblems.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, "tenant-frozen", "The tenant's data is moving.",
                "A tier change is moving the tenant's data; writes are refused for about a second. Retry after the Retry-After delay.");
        }

        if (_options.AllowTenantHeader && http.Request.Headers.TryGetValue(TenantGateway.TenantHeader, out var named)
            && (named.Count != 1 || !Names(route, named[0])))
        {
            GatewayLog.Mismatch(logger, tenantId, "header");
            return Mismatch(http);
        }

        if (_hostSuffix is not null)
        {
            var host = http.Request.Host.Host;
            if (host.EndsWith(_hostSuffix, StringComparison.OrdinalIgnoreCase)
                && !string.Equals(host[..^_hostSuffix.Length], route.Slug, StringComparison.OrdinalIgnoreCase))
            {
                GatewayLog.Mismatch(logger, tenantId, "host");
                return Mismatch(http);
            }
        }

        var context = new TenantContext
        {
            TenantId = route.TenantId,
            Slug = route.Slug,
            Tier = route.Tier,
            Isolation = route.Isolation,
            Subject = user.FindFirst("sub")?.Value ?? "",
            Roles = [.. user.FindAll("role").Select(c => c.Value)],
        };
        http.Items[TenantGateway.TenantItem] = new ResolvedTenant(route, context);
        return next(http);
    }

    private static bool Names(GatewayRoute route, string? value) =>
        value is not null && (string.Equals(value, route.Slug, StringComparison.Ordinal)
            || (Guid.TryParse(value, out var id) && id == route.TenantId));

    private static Task Mismatch(HttpContext http) =>
        GatewayProblems.WriteAsync(http, StatusCodes.Status403Forbidden, "tenant-mismatch", "The request names another tenant.",
            "The tenant named by the host or X-Tenant-Id header is not the token's tenant.");
}

/// <summary>
/// Forwards with YARP's <see cref="IHttpForwarder"/> to the tenant's upstream, carrying the signed tenant context;
/// shared-instance traffic goes straight into the app's pipeline when that app runs in this process. An upstream
/// that sends nothing for <see cref="GatewayOptions.UpstreamTimeout"/> gets its request answered 503 with
/// <c>Retry-After</c>; a dedicated one is then known to be unresponsive and its requests get 503 at once for
/// <see cref="GatewayOptions.UpstreamRetryAfter"/>, instead of each hanging in turn.
/// </summary>
internal sealed partial class TenantForwarder(
    IHttpForwarder forwarder,
    TenantContextSigner contextSigner,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<TenantForwarder> logger,
    GatewayRouteTable routes) : IDisposable
{
    private readonly HttpMessageInvoker _client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
    });

    private readonly string? _shared = options.Value.SharedUpstream?.ToString();
    private readonly string _audience = options.Value.ContextAudience;
    private int _nextShared;
    private readonly ForwarderRequestConfig _config = new() { ActivityTimeout = options.Value.UpstreamTimeout };
    private readonly TimeSpan _retryAfter = options.Value.UpstreamRetryAfter;

    /// <summary>Dedicated upstreams that timed out, and until when they get no requests (bounded by the number of dedicated tenants).</summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> _unresponsive = new(StringComparer.Ordinal);

    public async Task ForwardAsync(HttpContext http)
    {
        var tenant = http.Resolved();
        var route = tenant.Route;
        string audience;
        string? destination;
        if (routes.Apps is null)
        {
            // One app, behind the configured shared upstream and the tenants' own upstreams.
            audience = _audience;
            destination = route.Upstream?.ToString() ?? _shared;
        }
        else if (routes.AppFor(http.Request.Path.Value ?? "/") is not { } app)
        {
            await GatewayProblems.WriteAsync(http, StatusCodes.Status404NotFound, "no-app", "No app serves this path.",
                "No registered app's route prefix matches the request path.");
            return;
        }
        else
        {
            audience = app.Name;
            destination = route.Dedicated ? route.Apps?.GetValueOrDefault(app.Name)?.ToString() : PickShared(app);
            if (destination is null && route.Dedicated)
            {
                await GatewayProblems.WriteAsync(http, StatusCodes.Status404NotFound, "app-not-deployed", "The app has not reached this tenant yet.",
                    $"The tenant has no instance of '{app.Name}' yet; a rollout brings a new app to existing tenants.");
                return;
            }
        }

        if (destination is null)
        {
            await RestartingAsync(http);
            return;
        }

        var dedicated = route.Dedicated;
        ReplaceContextHeaders(http.Request.Headers, tenant.Context, dedicated, audience);

        // YARP copies the request's headers as they now are.
        if (UnresponsiveFor(destination) is { } wait)
        {
            await UnresponsiveAsync(http, wait);
            return;
        }

        // The upstream is a process of its own that enforces its own body limits (its server's and its endpoints');
        // the gateway streams the body without buffering it and lets the app decide, so the client gets the app's 413.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = null;
        }

        var error = await forwarder.SendAsync(http, destination, _client, _config, HttpTransformer.Default);
        if (error == ForwarderError.None || http.Response.HasStarted)
        {
            return;
        }

        var exception = http.Features.Get<IForwarderErrorFeature>()?.Exception;
        if (error == ForwarderError.RequestBodyClient)
        {
            // The client's body broke off (or was refused by this server): the client's fault, not the app's.
            var tooLarge = Find<BadHttpRequestException>(exception) is { StatusCode: StatusCodes.Status413PayloadTooLarge };
            await GatewayProblems.WriteAsync(
                http,
                tooLarge ? StatusCodes.Status413PayloadTooLarge : StatusCodes.Status400BadRequest,
                tooLarge ? "payload-too-large" : "request-body-incomplete",
                tooLarge ? "The request body is too large." : "The request body was not sent whole.",
                tooLarge ? "The gateway does not take a request body this large." : "The request body ended before it was complete.");
            return;
        }

        if (error == ForwarderError.RequestCanceled)
        {
            return; // The client went away: no one to answer.
        }

        if (error != ForwarderError.RequestTimedOut && Find<HttpRequestException>(exception) is not null)
        {
            // An instance is known and supervised: refusing connections, or dropping one it had accepted
            // (killed while hung, crashed mid-request), it is being (re)started. A shared one is passed over
            // for a moment, so the next requests go to the app's other shared instances.
            Log.Refused(logger, tenant.Route.TenantId, destination);
            if (!dedicated)
            {
                _down[destination] = time.GetUtcNow() + SharedDownFor;
            }

            await RestartingAsync(http);
            return;
        }

        if (error == ForwarderError.RequestTimedOut)
        {
            Log.TimedOut(logger, tenant.Route.TenantId, _config.ActivityTimeout!.Value);
            if (dedicated)
            {
                // One slow request of a shared instance says nothing about the other tenants it serves; a dedicated one's does.
                _unresponsive[destination] = time.GetUtcNow() + _retryAfter;
            }

            await UnresponsiveAsync(http, _retryAfter);
            return;
        }

        await GatewayProblems.WriteAsync(http, StatusCodes.Status502BadGateway, "upstream-unavailable", "The tenant's app did not answer.",
            "The gateway could not reach the tenant's app instance; try again shortly.");
    }

    /// <summary>How long a shared instance that refused a connection is passed over.</summary>
    private static readonly TimeSpan SharedDownFor = TimeSpan.FromSeconds(2);

    /// <summary>Shared instances that refused a connection, and until when they are passed over (bounded by the number of shared instances).</summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> _down = new(StringComparer.Ordinal);

    /// <summary>
    /// One of the app's shared instances, round robin, passing over those that refused a connection
    /// or timed out lately (unless all did); null when the app has none.
    /// </summary>
    private string? PickShared(GatewayApp app)
    {
        var shared = app.Shared;
        if (shared.Count == 0)
        {
            return null;
        }

        var start = Interlocked.Increment(ref _nextShared) & int.MaxValue;
        var now = time.GetUtcNow();
        for (var i = 0; i < shared.Count; i++)
        {
            var candidate = shared[(start + i) % shared.Count].ToString();
            if ((!_down.TryGetValue(candidate, out var until) || until <= now) && UnresponsiveFor(candidate) is null)
            {
                return candidate;
            }
        }

        return shared[start % shared.Count].ToString();
    }

    /// <summary>How much longer <paramref name="destination"/> is known to be unresponsive; null when it is not (any more).</summary>
    private TimeSpan? UnresponsiveFor(string destination)
    {
        if (!_unresponsive.TryGetValue(destination, out var until))
        {
            return null;
        }

        var left = until - time.GetUtcNow();
        if (left > TimeSpan.Zero)
        {
            return left;
        }

        _unresponsive.TryRemove(new KeyValuePair<string, DateTimeOffset>(destination, until));
        return null;
    }

    private static Task UnresponsiveAsync(HttpContext http, TimeSpan retryAfter)
    {
        var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
        http.Response.Clear();
        http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        return GatewayProblems.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, "upstream-unresponsive", "The tenant's app is not responding.",
            $"The tenant's app instance did not answer in time; retry after {seconds} s.");
    }

    private static Task RestartingAsync(HttpContext http)
    {
        http.Response.Clear();
        http.Response.Headers.RetryAfter = "1";
        return GatewayProblems.WriteAsync(http, StatusCodes.Status503ServiceUnavailable, "upstream-starting", "The tenant's app is starting.",
            "The tenant's app instance is being started or restarted; retry after 1 s.");
    }

    /// <summary>The first exception of type <typeparamref name="T"/> in <paramref name="exception"/> and its inner exceptions.</summary>
    private static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }

            if (e is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                {
                    if (Find<T>(inner) is { } nested)
                    {
                        return nested;
                    }
                }
            }
        }

        return null;
    }

    public void Dispose() => _client.Dispose();

    /// <summary>
    /// The request as the app must see it, in process or over HTTP: whatever the client sent in the
    /// <c>X-Tenant-</c> family and its credential gone, the gateway's verified context in, as a token signed for that upstream.
    /// </summary>
    private void ReplaceContextHeaders(IHeaderDictionary headers, TenantContext context, bool dedicated, string audience)
    {
        List<string>? family = null;
        foreach (var name in headers.Keys)
        {
            if (name.StartsWith(TenantGateway.ContextHeaderPrefix, StringComparison.OrdinalIgnoreCase))
            {
                (family ??= []).Add(name);
            }
        }

        family?.ForEach(name => headers.Remove(name));
        headers.Remove(HeaderNames.Authorization);
        headers[TenantContextToken.Header] = contextSigner.Sign(context, dedicated, audience);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The app instance of tenant {TenantId} sent nothing for {Timeout}; answered 503")]
        public static partial void TimedOut(ILogger logger, Guid tenantId, TimeSpan timeout);

        [LoggerMessage(2, LogLevel.Information, "The instance {Destination} refused or dropped the connection of tenant {TenantId}'s request; answered 503")]
        public static partial void Refused(ILogger logger, Guid tenantId, string destination);
    }
}

internal static partial class GatewayLog
{
    [LoggerMessage(1, LogLevel.Information, "Refused tenant {TenantId}: not active or not routable")]
    public static partial void Inactive(ILogger logger, Guid tenantId);

    [LoggerMessage(2, LogLevel.Warning, "Refused tenant {TenantId}: the {Source} names another tenant")]
    public static partial void Mismatch(ILogger logger, Guid tenantId, string source);

    [LoggerMessage(3, LogLevel.Warning, "Refused tenant {TenantId}: the routing table is stale")]
    public static partial void Stale(ILogger logger, Guid tenantId);

    [LoggerMessage(4, LogLevel.Debug, "Tenant {TenantId} hit its {Limit}")]
    public static partial void Limited(ILogger logger, Guid tenantId, string limit);
}
