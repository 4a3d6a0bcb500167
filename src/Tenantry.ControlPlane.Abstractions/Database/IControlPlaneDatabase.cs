using System.Data.Common;

namespace Tenantry.ControlPlane.Database;

/// <summary>
/// The control-plane store: SQLite in the data dir by default, PostgreSQL when
/// <c>Tenantry:Store</c> names one. Writes run in one transaction each and are serialised,
/// so a check and the write that follows it see the same state.
/// </summary>
public interface IControlPlaneDatabase
{
    /// <summary><c>sqlite</c> or <c>postgresql</c>.</summary>
    string Engine { get; }

    Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken = default);

    Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default);

    Task WriteAsync(Func<DbConnection, DbTransaction, Task> write, CancellationToken cancellationToken = default);

    /// <summary>
    /// A write that may run beside other writes of this kind but never beside an ordinary write:
    /// for inserts whose conflicts among themselves the store resolves (unique keys), which need
    /// only that no ordinary write (e.g. finalising an invoice) runs between their check and their
    /// insert. SQLite runs it like any write, one at a time.
    /// </summary>
    Task<T> WriteSharedAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default);
}
