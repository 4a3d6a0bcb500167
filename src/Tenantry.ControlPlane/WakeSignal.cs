namespace Tenantry.ControlPlane;

/// <summary>
/// Wakes one background loop in this process when it has new work (loops on other hosts poll): many
/// signals before the loop looks again count as one.
/// </summary>
public class WakeSignal : IDisposable
{
    private readonly SemaphoreSlim _signal = new(0, 1);

    public void Set()
    {
        if (_signal.CurrentCount > 0)
        {
            return;
        }

        try
        {
            _signal.Release();
        }
        catch (SemaphoreFullException)
        {
            // Set at the same moment by another caller; one wake-up is enough.
        }
    }

    /// <summary>Waits for a signal, or for <paramref name="timeout"/>; true when signalled.</summary>
    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _signal.WaitAsync(timeout, cancellationToken);

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _signal.Dispose();
        }
    }
}
