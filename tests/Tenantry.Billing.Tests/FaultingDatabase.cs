using System.Data.Common;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Tests;

/// <summary>
/// A real store that can be told to fail its next read or shared write once, with an exception
/// that is not a database error (as a bug in a write or a failing dependency would throw).
/// </summary>
internal sealed class FaultingDatabase(IControlPlaneDatabase inner) : IControlPlaneDatabase
{
    private Exception? _nextRead;
    private Exception? _nextSharedWrite;

    /// <summary>Completes once an armed failure has been thrown.</summary>
    public TaskCompletionSource Thrown { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Engine => inner.Engine;

    public void FailNextRead(Exception failure) => Arm(ref _nextRead, failure);

    public void FailNextSharedWrite(Exception failure) => Arm(ref _nextSharedWrite, failure);

    public Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken = default) =>
        Take(ref _nextRead) is { } failure ? Task.FromException<T>(failure) : inner.ReadAsync(read, cancellationToken);

    public Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(write, cancellationToken);

    public Task WriteAsync(Func<DbConnection, DbTransaction, Task> write, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(write, cancellationToken);

    public Task<T> WriteSharedAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default) =>
        Take(ref _nextSharedWrite) is { } failure
            ? inner.WriteSharedAsync<T>(async (c, tx) => { await write(c, tx); throw failure; }, cancellationToken)
            : inner.WriteSharedAsync(write, cancellationToken);

    private void Arm(ref Exception? slot, Exception failure)
    {
        Thrown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref slot, failure);
    }

    private Exception? Take(ref Exception? slot)
    {
        var failure = Interlocked.Exchange(ref slot, null);
        if (failure is not null)
        {
            Thrown.TrySetResult();
        }

        return failure;
    }
}
