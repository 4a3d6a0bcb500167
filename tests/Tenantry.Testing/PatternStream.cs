namespace Tenantry.Testing;

/// <summary>Content of a set length, generated as read; optionally failing part-way, as a client that goes away.</summary>
public sealed class PatternStream(long length, long failAfter = long.MaxValue) : Stream
{
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_position >= failAfter)
        {
            throw new IOException("The client went away.");
        }

        var n = (int)Math.Min(count, length - _position);
        buffer.AsSpan(offset, n).Fill((byte)'x');
        _position += n;
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
