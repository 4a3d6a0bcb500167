using System.Net;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>
/// Objects in an S3-compatible bucket under the same keys (<c>tenants/{tenant}/…</c>). Keys reach
/// it validated and authorised by <see cref="ITenantObjectStorage"/>, exactly as for local folders.
/// </summary>
internal sealed class S3ObjectStore : IObjectStoreProvider, IDisposable
{
    private readonly AmazonS3Client _client;
    private readonly string _bucket;
    private readonly TimeProvider _time;

    public S3ObjectStore(S3ObjectStoreOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _bucket = options.Bucket;
        _time = time;
        var config = new AmazonS3Config
        {
            ServiceURL = options.ServiceUrl,
            ForcePathStyle = options.ForcePathStyle,
            AuthenticationRegion = options.Region,
            // Plain payloads: S3-compatible servers do not all speak the newer checksum trailers.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        _client = new AmazonS3Client(new BasicAWSCredentials(options.AccessKey, options.SecretKey), config);
    }

    public string Name => "s3";

    public async Task<StoredObject> PutAsync(ObjectKey key, Stream content, CancellationToken cancellationToken)
    {
        // Buffered so the request has a length and a signed payload; bounded here too, so a caller
        // passing an endless stream cannot fill the memory.
        using var buffer = new MemoryStream();
        await using (var limited = new LimitedStream(content, ObjectsApi.MaxObjectBytes))
        {
            await limited.CopyToAsync(buffer, cancellationToken);
        }

        buffer.Position = 0;
        await _client.PutObjectAsync(new PutObjectRequest
        {
            BucketName = _bucket,
            Key = key.FullKey,
            InputStream = buffer,
            AutoCloseStream = false,
            UseChunkEncoding = false,
        }, cancellationToken);
        return new StoredObject(key.FullKey, buffer.Length, _time.GetUtcNow());
    }

    public async Task<ObjectContent?> GetAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        try
        {
            var response = await _client.GetObjectAsync(_bucket, key.FullKey, cancellationToken);
            var modified = response.LastModified is { } m ? new DateTimeOffset(DateTime.SpecifyKind(m, DateTimeKind.Utc)) : _time.GetUtcNow();
            return new ObjectContent(new StoredObject(key.FullKey, response.ContentLength, modified), new ResponseStream(response));
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<StoredObject>> ListAsync(ObjectKey prefix, int limit, CancellationToken cancellationToken)
    {
        var result = new List<StoredObject>();
        await foreach (var o in Pages(prefix, limit, cancellationToken))
        {
            result.Add(o);
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return result;
    }

    public IAsyncEnumerable<StoredObject> EnumerateAsync(ObjectKey prefix, CancellationToken cancellationToken) =>
        Pages(prefix, int.MaxValue, cancellationToken);

    private async IAsyncEnumerable<StoredObject> Pages(ObjectKey prefix, int limit, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var count = 0;
        string? token = null;
        do
        {
            var page = await _client.ListObjectsV2Async(new ListObjectsV2Request
            {
                BucketName = _bucket,
                Prefix = prefix.FullKey,
                MaxKeys = Math.Min(1000, limit - count),
                ContinuationToken = token,
            }, cancellationToken);
            foreach (var o in page.S3Objects ?? [])
            {
                var modified = o.LastModified is { } m ? new DateTimeOffset(DateTime.SpecifyKind(m, DateTimeKind.Utc)) : _time.GetUtcNow();
                count++;
                yield return new StoredObject(o.Key, o.Size ?? 0, modified);
            }

            token = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (token is not null && count < limit);
    }

    public async Task<bool> DeleteAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        // S3 deletes succeed for missing keys; look first so the API can answer 404.
        try
        {
            await _client.GetObjectMetadataAsync(_bucket, key.FullKey, cancellationToken);
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }

        await _client.DeleteObjectAsync(_bucket, key.FullKey, cancellationToken);
        return true;
    }

    public void Dispose() => _client.Dispose();

    /// <summary>The object's body; disposing it releases the HTTP response.</summary>
    private sealed class ResponseStream(GetObjectResponse response) : Stream
    {
        private readonly Stream _inner = response.ResponseStream;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => response.ContentLength;
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _inner.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                response.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}

public static class S3ObjectStorageExtensions
{
    /// <summary>Tenant objects in the S3 bucket of <c>Tenantry:ObjectStorage:S3</c>.</summary>
    public static TenantryBuilder AddS3ObjectStorage(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(sp => new S3ObjectStore(sp.GetRequiredService<IOptions<ObjectStorageOptions>>().Value.S3, sp.GetRequiredService<TimeProvider>()));
        return builder;
    }
}
