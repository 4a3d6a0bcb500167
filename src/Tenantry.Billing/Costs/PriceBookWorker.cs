using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Costs;

/// <summary>
/// The daily costing run: every <c>Tenantry:Costs:RunInterval</c>, prices each finished UTC day after the
/// last one recorded in <c>cost_runs</c> (yesterday on a new store; at most <c>CatchUpDays</c> back). A day
/// is recorded in the transaction that writes its lines, and its lines have deterministic ids, so a
/// restart mid-run runs the day again without doubling it, and replicas running it at once agree.
/// </summary>
internal sealed partial class PriceBookWorker(
    PriceBookRun run, IControlPlaneDatabase db, IOptionsMonitor<CostOptions> options, TimeProvider time, ILogger<PriceBookWorker> logger) : BackgroundService
{
    private const string Actor = "system:costs";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CatchUpAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // A failed run must not end the loop; the next tick tries the same days again.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.RunFailed(logger, ex);
            }

            try
            {
                await Task.Delay(options.CurrentValue.RunInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task CatchUpAsync(CancellationToken ct)
    {
        var settings = options.CurrentValue;
        if (settings.PriceBook.IsEmpty)
        {
            return;
        }

        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        var yesterday = today.AddDays(-1);
        var last = await db.ReadAsync(CostStore.LastRunDayAsync, ct);
        var first = last is null ? yesterday : DateOnly.ParseExact(last, "yyyy-MM-dd", CultureInfo.InvariantCulture).AddDays(1);
        if (first < today.AddDays(-settings.CatchUpDays))
        {
            first = today.AddDays(-settings.CatchUpDays);
        }

        for (var day = first; day <= yesterday; day = day.AddDays(1))
        {
            var result = await run.RunAsync(day, preview: false, Actor, ct);
            Log.Costed(logger, result.Day, result.Lines, result.Total, result.Currency);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Price book applied to {Day}: {Lines} cost lines, {Total} {Currency}")]
        public static partial void Costed(ILogger logger, string day, int lines, decimal total, string currency);

        [LoggerMessage(2, LogLevel.Warning, "The costing run failed; it is tried again at the next interval")]
        public static partial void RunFailed(ILogger logger, Exception exception);
    }
}
