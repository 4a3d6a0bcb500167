using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Jobs;

public static class JobsServices
{
    /// <summary>Tenant work queues: the queues on the store's engine (<see cref="JobBackend"/>, picked in <c>TenantryEngines</c>), their limits from the plans, the workers' scoped tokens, and the maintenance loop.</summary>
    public static IServiceCollection AddTenantryJobs(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<JobsOptions>().BindConfiguration(JobsOptions.Section).ValidateSettings(JobsOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JobsOptions>, JobsOptionsValidator>());
        services.TryAddSingleton<JobSignal>();
        services.TryAddSingleton<IJobLimits, PlanJobLimits>();
        services.TryAddSingleton<JobMetrics>();
        services.TryAddSingleton<JobQueues>();
        services.TryAddSingleton<IJobQueues>(sp => sp.GetRequiredService<JobQueues>());
        services.TryAddSingleton<JobTokens>();
        services.AddHostedService<PostgresJobListener>();
        services.AddHostedService<JobsMaintenance>();
        services.TryAddSingleton<JobEventRouter>();
        services.AddHostedService(sp => sp.GetRequiredService<JobEventRouter>());
        return services;
    }
}

/// <summary>
/// Every few seconds: puts lapsed leases back (so a crashed worker's jobs come back even when no
/// one leases), refreshes the queue gauges, and deletes succeeded jobs past their retention.
/// </summary>
internal sealed partial class JobsMaintenance(IJobQueues queues, JobBackend backend, JobMetrics metrics, IOptions<JobsOptions> options, TimeProvider time, ILogger<JobsMaintenance> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await queues.ReclaimAsync(stoppingToken);
                metrics.Update(await queues.FiguresAsync(null, stoppingToken));
                var before = (time.GetUtcNow() - options.Value.Retention).ToUnixTimeMilliseconds();
                await backend.WriteAsync((c, tx) => JobStore.TrimAsync(c, tx, before), stoppingToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException or InvalidOperationException)
            {
                failures++;
                Log.Failed(logger, ex);
            }

            await Task.Delay(LoopBackOff.After(Interval, failures), time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Job queue maintenance failed; it runs again shortly.")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
