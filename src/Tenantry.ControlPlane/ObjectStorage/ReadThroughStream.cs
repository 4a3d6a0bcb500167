namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>
/// A forward-only view of a body that lets a subclass check each chunk as it is read (a size limit,
/// a quota), so nothing past the check reaches the store. <see cref="Position"/> counts the bytes read.
/// </summary>
internal abstract class ReadThroughStream(Stream inner) : Stream
{
    private long _read;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        var before = _read;
        _read += read;
        await CheckAsync(before, read, cancellationToken);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>Called after each read of <paramref name="read"/> bytes that followed <paramref name="before"/> bytes; throws to refuse the body.</summary>
    protected abstract ValueTask CheckAsync(long before, int read, CancellationToken cancellationToken);
}
