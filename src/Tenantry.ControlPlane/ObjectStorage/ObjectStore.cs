namespace Tenantry.ControlPlane.ObjectStorage;

public sealed record StoredObject(string Key, long Size, DateTimeOffset LastModified);

/// <summary>An object being read; dispose it to release the file or connection.</summary>
public sealed class ObjectContent(StoredObject info, Stream stream) : IAsyncDisposable, IDisposable
{
    public StoredObject Info { get; } = info;

    public Stream Stream { get; } = stream;

    public ValueTask DisposeAsync() => Stream.DisposeAsync();

    public void Dispose() => Stream.Dispose();
}

/// <summary>A put that collides with the layout (a file where a folder is, or the reverse).</summary>
public sealed class ObjectConflictException(string message) : Exception(message);

/// <summary>
/// Where objects live, with no policy of its own: <see cref="ITenantObjectStorage"/> validates keys and
/// authorises every call before reaching it. Keys given here are already validated.
/// </summary>
public interface IObjectStoreProvider
{
    string Name { get; }

    Task<StoredObject> PutAsync(ObjectKey key, Stream content, CancellationToken cancellationToken);

    Task<ObjectContent?> GetAsync(ObjectKey key, CancellationToken cancellationToken);

    /// <summary>Objects whose key starts with the prefix, in key order, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<StoredObject>> ListAsync(ObjectKey prefix, int limit, CancellationToken cancellationToken);

    Task<bool> DeleteAsync(ObjectKey key, CancellationToken cancellationToken);

    /// <summary>Every object whose key starts with the prefix, in no set order: what offboarding exports and deletes.</summary>
    IAsyncEnumerable<StoredObject> EnumerateAsync(ObjectKey prefix, CancellationToken cancellationToken);
}
