using System.Collections.Concurrent;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// Wakes requests that wait for an operation to finish (<c>GET /v1/operations/{id}?wait=</c>).
/// In process only: a waiter also re-reads the store now and then, for work finished by another replica.
/// </summary>
internal sealed class OperationSignals
{
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource> _waiters = new();

    public Task Next(Guid operationId) =>
        _waiters.GetOrAdd(operationId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    public void Finished(Guid operationId)
    {
        if (_waiters.TryRemove(operationId, out var waiter))
        {
            waiter.TrySetResult();
        }
    }
}
