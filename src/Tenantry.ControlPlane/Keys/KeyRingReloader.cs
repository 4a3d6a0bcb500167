using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Microsoft.Extensions.Primitives;
using OpenIddict.Server;
using OpenIddict.Validation;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>
/// Keeps the ring current: reloads it when a replica's rotation is notified on the store (LISTEN), and every
/// <see cref="KeyRingOptions.ReloadEvery"/> in case a notification was lost; and, with
/// <see cref="KeyRingOptions.RotateEvery"/>, rotates every key once the signing key is that old (replicas on one
/// store racing for it make one rotation: the store swaps only the key each of them read).
/// </summary>
internal sealed partial class KeyRingReloader(
    KeyRing ring,
    IControlPlaneDatabase db,
    IOptions<TenantryOptions> tenantry,
    IOptions<KeyRingOptions> options,
    TimeProvider time,
    ILogger<KeyRingReloader> logger) : StoreChannelListener(KeyStore.Channel, logger)
{
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly Lazy<NpgsqlDataSource?> _source = new(() => db.Engine == "postgresql" && !string.IsNullOrWhiteSpace(tenantry.Value.Store)
        ? NpgsqlDataSource.Create(tenantry.Value.Store)
        : null);

    protected override NpgsqlDataSource? Source => _source.Value;

    protected override void OnNotification(string payload) => Wake();

    protected override void OnListening() => Wake();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var listening = base.ExecuteAsync(stoppingToken);
        try
        {
            await ring.LoadAsync();
            while (!stoppingToken.IsCancellationRequested)
            {
                await _wake.WaitAsync(options.Value.ReloadEvery, stoppingToken);

                try
                {
                    await ring.ReloadAsync(stoppingToken);
                    await RotateIfDueAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.ReloadFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        await listening;
    }

    private async Task RotateIfDueAsync(CancellationToken cancellationToken)
    {
        if (options.Value.RotateEvery is not { } every)
        {
            return;
        }

        var signing = (await ring.ListAsync(cancellationToken)).First(k => k.Kind == KeyRing.SigningKeyName && k.Status == "current");
        if (signing.Created + every <= time.GetUtcNow())
        {
            await ring.RotateAsync([], "tenantry:schedule", cancellationToken);
        }
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
        }
    }

    public override void Dispose()
    {
        if (_source.IsValueCreated)
        {
            _source.Value?.Dispose();
        }

        _wake.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Reloading the key ring failed; the keys loaded before stay in use until the next try.")]
        public static partial void ReloadFailed(ILogger logger, Exception exception);
    }
}

/// <summary>
/// Tells OpenIddict's server and validation options that the ring changed, so the next request builds them again with
/// the new current key first and the retiring ones after it (the server's before the validation's, which copies them).
/// </summary>
internal sealed class KeyRingOptionsChanges : IDisposable
{
    private readonly Source<OpenIddictServerOptions> _server = new();
    private readonly Source<OpenIddictValidationOptions> _validation = new();

    public KeyRingOptionsChanges(KeyRing ring)
    {
        ring.Changed += (_, _) =>
        {
            _server.Signal();
            _validation.Signal();
        };
    }

    public IOptionsChangeTokenSource<OpenIddictServerOptions> Server => _server;

    public IOptionsChangeTokenSource<OpenIddictValidationOptions> Validation => _validation;

    public void Dispose()
    {
        _server.Dispose();
        _validation.Dispose();
    }

    private sealed class Source<T> : IOptionsChangeTokenSource<T>, IDisposable
    {
        private CancellationTokenSource _changes = new();

        public string Name => Options.DefaultName;

        public IChangeToken GetChangeToken() => new CancellationChangeToken(Volatile.Read(ref _changes).Token);

        public void Signal()
        {
            var fired = Interlocked.Exchange(ref _changes, new CancellationTokenSource());
            // Not disposed: a token handed out before may still be registered with.
            fired.Cancel();
        }

        public void Dispose() => _changes.Dispose();
    }
}
