using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.AspNetCore.Jobs;

/// <summary>A leased job as a handler gets it.</summary>
/// <param name="Id">The job's id.</param>
/// <param name="TenantId">The tenant whose job it is.</param>
/// <param name="TenantSlug">The tenant's slug.</param>
/// <param name="Type">The job's type.</param>
/// <param name="Payload">The payload given at enqueue.</param>
/// <param name="Attempt">This run's number, from 1.</param>
/// <param name="Token">An access token of the job's tenant that expires with the lease: use it, not the worker's own credentials, for the job's work.</param>
/// <param name="LeaseExpiresAt">When the lease lapses and the job goes to another worker.</param>
public sealed record TenantJob(Guid Id, Guid TenantId, string TenantSlug, string Type, JsonElement Payload, int Attempt, string Token, DateTimeOffset LeaseExpiresAt);

/// <summary>Where the worker leases jobs and how.</summary>
public sealed class JobWorkerOptions
{
    /// <summary>The control plane's base address, e.g. <c>http://127.0.0.1:5080/</c>.</summary>
    public Uri? ControlPlane { get; set; }

    /// <summary>The worker's bearer token: a tenant machine client's (its own jobs) or an operator's (every tenant's, by fair share). Called before each lease, so it may refresh.</summary>
    public Func<CancellationToken, Task<string>>? Token { get; set; }

    /// <summary>Jobs run at once (each loop leases one job at a time, so no tenant waits behind a batch).</summary>
    public int Concurrency { get; set; } = 1;

    /// <summary>Seconds a lease lasts; a handler still running then is cancelled and its result dropped.</summary>
    public int VisibilitySeconds { get; set; } = 60;

    /// <summary>Seconds a lease call waits for a job when none is due (0-20).</summary>
    public int WaitSeconds { get; set; } = 20;
}

/// <summary>Registers handlers per job type.</summary>
public sealed class JobWorkerBuilder
{
    internal JobWorkerBuilder(IServiceCollection services) => Services = services;

    /// <summary>The services the worker is registered in.</summary>
    public IServiceCollection Services { get; }

    /// <summary>Runs <paramref name="handler"/> for jobs of <paramref name="type"/>: returning acks the job, throwing nacks it with the exception's message.</summary>
    public JobWorkerBuilder Handle(string type, Func<TenantJob, CancellationToken, Task> handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(type);
        ArgumentNullException.ThrowIfNull(handler);
        Services.Configure<JobHandlers>(h => h.ByType[type] = handler);
        return this;
    }
}

/// <summary>The handlers by type.</summary>
internal sealed class JobHandlers
{
    public Dictionary<string, Func<TenantJob, CancellationToken, Task>> ByType { get; } = new(StringComparer.Ordinal);
}

/// <summary>Adds the job worker.</summary>
public static class JobWorkerServiceCollectionExtensions
{
    /// <summary>
    /// A hosted service that leases the tenants' jobs from the control plane (the HTTP pull protocol of
    /// <c>docs/jobs.md</c>), runs the handler of each job's type and acks or nacks it.
    /// </summary>
    public static JobWorkerBuilder AddTenantryJobWorker(this IServiceCollection services, Action<JobWorkerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<JobWorkerOptions>().Configure(configure).Validate(
            o => o.ControlPlane is not null && o.Token is not null && o.Concurrency is >= 1 and <= 256 && o.VisibilitySeconds >= 1 && o.WaitSeconds is >= 0 and <= 20,
            "The job worker needs ControlPlane and Token, Concurrency 1-256, VisibilitySeconds >= 1 and WaitSeconds 0-20.").ValidateOnStart();
        services.AddHttpClient(JobWorker.HttpClientName);
        services.AddHostedService<JobWorker>();
        return new JobWorkerBuilder(services);
    }
}

/// <summary>The lease, run, ack/nack loops.</summary>
internal sealed partial class JobWorker(IHttpClientFactory clients, IOptions<JobWorkerOptions> options, IOptions<JobHandlers> handlers, ILogger<JobWorker> logger) : BackgroundService
{
    public const string HttpClientName = "Tenantry.Jobs";

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(Enumerable.Range(0, options.Value.Concurrency).Select(_ => LoopAsync(stoppingToken)));

    private async Task LoopAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var types = handlers.Value.ByType.Keys.ToArray();
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                using var http = clients.CreateClient(HttpClientName);
                http.BaseAddress = o.ControlPlane;
                http.Timeout = TimeSpan.FromSeconds(o.WaitSeconds + 30);
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await o.Token!(stoppingToken));
                using var response = await http.PostAsJsonAsync("v1/jobs/lease", new { types, max = 1, visibilitySeconds = o.VisibilitySeconds, waitSeconds = o.WaitSeconds }, stoppingToken);
                response.EnsureSuccessStatusCode();
                var leased = await response.Content.ReadFromJsonAsync<LeaseAnswer>(stoppingToken);
                failures = 0;
                foreach (var item in leased?.Items ?? [])
                {
                    await RunAsync(http, item, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is HttpRequestException or JsonException or TaskCanceledException)
            {
                failures++;
                Log.LeaseFailed(logger, ex);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(30_000, 250 * Math.Pow(2, Math.Min(failures, 10)))), stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task RunAsync(HttpClient http, LeasedItem item, CancellationToken stoppingToken)
    {
        var job = new TenantJob(item.Id, item.TenantId, item.TenantSlug, item.Type, item.Payload, item.Attempt, item.Token, item.LeaseExpiresAt);
        string? error = null;
        using (var lease = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken))
        {
            lease.CancelAfter(item.LeaseExpiresAt - DateTimeOffset.UtcNow);
            try
            {
                if (!handlers.Value.ByType.TryGetValue(item.Type, out var handler))
                {
                    error = $"No handler for job type '{item.Type}'.";
                }
                else
                {
                    await handler(job, lease.Token);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // Stopping: the lease lapses and the job goes to another worker.
                return;
            }
#pragma warning disable CA1031 // A handler's failure of any kind is the job's, reported by a nack.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                error = ex.Message;
                Log.HandlerFailed(logger, item.TenantId, item.Id, item.Type, ex);
            }
        }

        using var finish = error is null
            ? await http.PostAsJsonAsync($"v1/jobs/{item.Id}/ack", new { leaseId = item.LeaseId }, stoppingToken)
            : await http.PostAsJsonAsync($"v1/jobs/{item.Id}/nack", new { leaseId = item.LeaseId, error }, stoppingToken);
        if (finish.StatusCode == HttpStatusCode.Conflict)
        {
            Log.LeaseLost(logger, item.TenantId, item.Id);
        }
    }

    private sealed record LeaseAnswer(List<LeasedItem> Items);

    private sealed record LeasedItem(Guid Id, Guid TenantId, string TenantSlug, string Type, JsonElement Payload, int Attempt, string LeaseId, DateTimeOffset LeaseExpiresAt, string Token);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Leasing jobs failed; trying again shortly.")]
        public static partial void LeaseFailed(ILogger logger, Exception exception);

        [LoggerMessage(2, LogLevel.Warning, "Job {JobId} ({Type}) of tenant {TenantId} failed; it is nacked.")]
        public static partial void HandlerFailed(ILogger logger, Guid tenantId, Guid jobId, string type, Exception exception);

        [LoggerMessage(3, LogLevel.Warning, "Job {JobId} of tenant {TenantId} outlived its lease; another worker has it, and this result is dropped.")]
        public static partial void LeaseLost(ILogger logger, Guid tenantId, Guid jobId);
    }
}
