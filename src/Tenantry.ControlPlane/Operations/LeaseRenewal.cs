namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// Work done under a lease: the lease is renewed on a timer while the work runs, and the work's
/// token is cancelled once a renewal finds another holder (a higher fencing token). The one loop
/// under operations, rollouts and fleet migrations.
/// </summary>
internal static class LeaseRenewal
{
    /// <summary>
    /// Runs <paramref name="work"/> while <paramref name="renew"/> (false: the lease is gone) is
    /// called every <paramref name="every"/>. True when the work ended; false when it was cancelled
    /// because the lease was lost. A renewal that throws is reported and tried again at the next
    /// tick: a commit after the lease ran out is refused by its fencing token anyway.
    /// </summary>
    public static async Task<bool> RunAsync(
        Func<CancellationToken, Task<bool>> renew,
        Func<CancellationToken, Task> work,
        TimeSpan every,
        TimeProvider time,
        Action<Exception> renewFailed,
        CancellationToken stoppingToken)
    {
        using var leaseLost = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        using var stopRenewing = new CancellationTokenSource();
        var renewal = RenewAsync(renew, every, time, renewFailed, leaseLost, stopRenewing.Token);
        try
        {
            await work(leaseLost.Token);
            return true;
        }
        catch (OperationCanceledException) when (leaseLost.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
        {
            return false;
        }
        finally
        {
            await stopRenewing.CancelAsync();
            await renewal;
        }
    }

    private static async Task RenewAsync(
        Func<CancellationToken, Task<bool>> renew, TimeSpan every, TimeProvider time, Action<Exception> renewFailed, CancellationTokenSource leaseLost, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(every, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    if (!await renew(stop))
                    {
                        await leaseLost.CancelAsync();
                        return;
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    renewFailed(ex);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
    }
}
