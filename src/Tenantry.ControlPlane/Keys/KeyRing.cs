using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>The token issuer's RSA keys, wherever they are kept (the data dir, or a shared store).</summary>
public interface ITokenKeys
{
    /// <summary>The key new tokens are signed with.</summary>
    RsaSecurityKey Signing { get; }

    /// <summary>The key new tokens are encrypted with.</summary>
    RsaSecurityKey Encryption { get; }

    /// <summary>Signing keys a rotation replaced that still validate the tokens they signed, until they retire.</summary>
    IReadOnlyList<RsaSecurityKey> RetiringSigning { get; }

    /// <summary>Encryption keys a rotation replaced that still open what they encrypted, until they retire.</summary>
    IReadOnlyList<RsaSecurityKey> RetiringEncryption { get; }
}

/// <summary>One key of the ring as <c>GET /v1/keys</c> lists it: never its material.</summary>
public sealed record KeyInfo
{
    public required string Id { get; init; }

    /// <summary><c>signing</c>, <c>encryption</c>, <c>tenant-context</c> or <c>data-protection</c>.</summary>
    public required string Kind { get; init; }

    /// <summary><c>current</c> (signs), <c>next</c> (published, signs after the next rotation), <c>retiring</c> (validates only) or <c>retired</c>.</summary>
    public required string Status { get; init; }

    public required DateTimeOffset Created { get; init; }

    /// <summary>When a newer key replaced it for signing (retiring and retired keys).</summary>
    public DateTimeOffset? SupersededAt { get; init; }

    /// <summary>When the key no longer validates (retiring keys), or no longer did (retired ones).</summary>
    public DateTimeOffset? RetiresAt { get; init; }
}

/// <summary>What a rotation did: the keys that sign now and the ones they replaced, with when those retire.</summary>
public sealed record KeyRotationResult(IReadOnlyList<KeyInfo> Current, IReadOnlyList<KeyInfo> Retiring);

/// <summary>
/// The platform's key ring: the token issuer's signing and encryption keys, the gateways' tenant-context key (with its
/// next key, published to app instances before it signs) and the Data Protection keys. It rotates them and reloads
/// what other replicas rotated.
/// </summary>
public interface IKeyRing
{
    /// <summary>The kinds of key a rotation can name.</summary>
    static IReadOnlyList<string> Kinds { get; } = [KeyRing.SigningKeyName, KeyRing.EncryptionKeyName, KeyRing.ContextKeyName, KeyRing.DataProtectionKind];

    /// <summary>The tenant-context key gateways sign with (PKCS#8 PEM of an EC P-256 key).</summary>
    string ContextSigningKeyPem { get; }

    /// <summary>The tenant-context keys app instances are given the public half of: current, next and retiring.</summary>
    IReadOnlyList<string> ContextPublishedPems { get; }

    /// <summary>Raised after the ring changed (a rotation here, or one another replica made).</summary>
    event EventHandler? Changed;

    /// <summary>Rotates the keys of <paramref name="kinds"/> (all when empty).</summary>
    Task<KeyRotationResult> RotateAsync(IReadOnlyCollection<string> kinds, string actor, CancellationToken cancellationToken);

    Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Reads the ring again (what other replicas rotated).</summary>
    Task ReloadAsync(CancellationToken cancellationToken);
}

/// <summary>Key ring settings, under <c>Tenantry:Keys</c>.</summary>
public sealed class KeyRingOptions
{
    public const string Section = "Tenantry:Keys";

    /// <summary>Rotate every key this often (by the age of the current signing key); off when unset.</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan? RotateEvery { get; set; }

    /// <summary>How often a replica reads the ring again besides the store's notifications (the fallback when they are lost).</summary>
    [System.ComponentModel.DataAnnotations.Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan ReloadEvery { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// The key ring. On the embedded SQLite store the keys are 0600 PEM files in the data dir; on a shared PostgreSQL
/// store they live in the store, sealed with the master key, so every replica signs and validates with the same keys.
/// A rotation makes a new current key; the replaced one keeps validating until every token it signed has expired
/// (the longest token lifetime plus clock skew), then retires.
/// </summary>
internal sealed partial class KeyRing : ITokenKeys, IKeyRing, IDisposable
{
    public const string SigningKeyName = "signing";
    public const string EncryptionKeyName = "encryption";
    public const string ContextKeyName = "tenant-context";
    public const string ContextNextName = "tenant-context-next";
    public const string DataProtectionKind = "data-protection";

    /// <summary>The longest lifetime of a token the issuer signs apart from access tokens (OpenIddict's identity tokens).</summary>
    private static readonly TimeSpan IdentityTokenLifetime = TimeSpan.FromMinutes(20);

    /// <summary>The largest clock skew any validator of the platform allows (the gateway's), with a margin.</summary>
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(1);

    private readonly IServiceProvider _services;
    private readonly TenantryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<KeyRing> _logger;
    private readonly Lazy<IKeyBackend> _backend;
    private readonly SemaphoreSlim _reload = new(1, 1);
    private readonly Lock _firstLock = new();
    private Task? _first;
    private volatile State? _state;

    public KeyRing(IServiceProvider services, IOptions<TenantryOptions> options, TimeProvider time, ILogger<KeyRing> logger)
    {
        _services = services;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _backend = new(() => InStore(_options)
            ? new StoreKeyBackend(services.GetRequiredService<IControlPlaneDatabase>(), new MasterKey(_options.MasterKey!), time)
            : new FileKeyBackend(_options.DataPath, ContextKeyFile(services.GetRequiredService<IConfiguration>(), _options), services.GetRequiredService<IControlPlaneDatabase>()));
    }

    public event EventHandler? Changed;

    /// <summary>True once the keys are loaded (and, on a shared store, opened with the master key).</summary>
    public bool IsLoaded => _state is not null;

    public RsaSecurityKey Signing => Current().Signing[0];

    public RsaSecurityKey Encryption => Current().Encryption[0];

    public IReadOnlyList<RsaSecurityKey> RetiringSigning => Current().Signing[1..];

    public IReadOnlyList<RsaSecurityKey> RetiringEncryption => Current().Encryption[1..];

    public string ContextSigningKeyPem => Current().ContextPem;

    public IReadOnlyList<string> ContextPublishedPems => Current().ContextPublished;

    /// <summary>How long a replaced key keeps validating: the longest token lifetime plus clock skew.</summary>
    public TimeSpan RetireAfter
    {
        get
        {
            // A job's scoped token lives as long as the longest lease (Tenantry:Jobs:MaxVisibility), read as configured so
            // the key ring does not depend on the jobs feature.
            var jobs = _services.GetRequiredService<IConfiguration>().GetValue("Tenantry:Jobs:MaxVisibility", TimeSpan.FromMinutes(15));
            return new[] { _options.AccessTokenLifetime, IdentityTokenLifetime, jobs }.Max() + ClockSkew;
        }
    }

    /// <summary>True when keys live in the shared store rather than in the data dir.</summary>
    public static bool InStore(TenantryOptions options) => !string.IsNullOrWhiteSpace(options.Store);

    /// <summary>The tenant-context key's file on the embedded store: <c>Tenantry:Gateway:ContextSigningKeyFile</c>, by default in the data dir's keys folder.</summary>
    public static string ContextKeyFile(IConfiguration configuration, TenantryOptions options) =>
        configuration["Tenantry:Gateway:ContextSigningKeyFile"] is { Length: > 0 } file ? file : Path.Combine(options.DataPath, "keys", "tenant-context-es256.pem");

    /// <summary>Loads the ring (making the keys it lacks) once; later calls wait for that load.</summary>
    public Task LoadAsync()
    {
        lock (_firstLock)
        {
            return _first ??= ReloadAsync(CancellationToken.None);
        }
    }

    public async Task ReloadAsync(CancellationToken cancellationToken)
    {
        await _reload.WaitAsync(cancellationToken);
        try
        {
            var state = await ReadAsync(cancellationToken);
            var before = _state;
            if (before is not null && before.Fingerprint == state.Fingerprint)
            {
                return; // Unchanged: the keys in use stay the same objects.
            }

            _state = state;
            if (before is not null)
            {
                Log.Reloaded(_logger, state.Signing[0].KeyId!, state.ContextKeyId);
                Changed?.Invoke(this, EventArgs.Empty);
            }
        }
        finally
        {
            _reload.Release();
        }
    }

    public async Task<KeyRotationResult> RotateAsync(IReadOnlyCollection<string> kinds, string actor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(kinds);
        await LoadAsync();
        var names = kinds.Count == 0 ? IKeyRing.Kinds : [.. IKeyRing.Kinds.Where(kinds.Contains)];
        var backend = _backend.Value;
        var now = _time.GetUtcNow();
        var retiresAt = now + RetireAfter;
        var plans = new List<KeyRotationPlan>();
        foreach (var name in names)
        {
            switch (name)
            {
                case SigningKeyName or EncryptionKeyName:
                    plans.Add(new KeyRotationPlan(name, await backend.CurrentAsync(name, NewRsaPem, cancellationToken), NewRsaPem(), null, null));
                    break;
                case ContextKeyName:
                    // The next key, which app instances already verify with, signs from now on; a new next key is published.
                    var next = await backend.CurrentAsync(ContextNextName, NewEcPem, cancellationToken);
                    plans.Add(new KeyRotationPlan(name, await backend.CurrentAsync(name, NewEcPem, cancellationToken), next.Pem, ContextNextName, NewEcPem()));
                    break;
            }
        }

        string? dataProtectionKey = null;
        if (names.Contains(DataProtectionKind))
        {
            var manager = _services.GetRequiredService<IKeyManager>();
            dataProtectionKey = manager.CreateNewKey(now, now + TimeSpan.FromDays(90)).KeyId.ToString();
        }

        var rotated = await backend.RotateAsync(
            plans,
            now,
            retiresAt,
            swapped => AuditLog.By(actor, null, "keys.rotate", "succeeded", new System.Text.Json.Nodes.JsonObject
            {
                ["keys"] = new System.Text.Json.Nodes.JsonArray([.. swapped.Select(s => (System.Text.Json.Nodes.JsonNode?)s), .. dataProtectionKey is null ? Array.Empty<System.Text.Json.Nodes.JsonNode?>() : [DataProtectionKind]]),
                ["retiresAt"] = retiresAt,
            }, now),
            cancellationToken);
        if (rotated.Count == 0 && dataProtectionKey is not null)
        {
            await _services.GetRequiredService<IControlPlaneDatabase>().WriteAsync(
                (c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.By(actor, null, "keys.rotate", "succeeded", new System.Text.Json.Nodes.JsonObject { ["keys"] = new System.Text.Json.Nodes.JsonArray(DataProtectionKind) }, now)),
                cancellationToken);
        }

        Log.Rotated(_logger, string.Join(", ", rotated), plans.Count - rotated.Count);
        await ReloadAsync(cancellationToken);
        var listed = await ListAsync(cancellationToken);
        var wanted = names.ToHashSet(StringComparer.Ordinal);
        return new KeyRotationResult(
            [.. listed.Where(k => wanted.Contains(k.Kind) && k.Status == "current")],
            [.. listed.Where(k => wanted.Contains(k.Kind) && k.Status == "retiring" && k.SupersededAt >= now - TimeSpan.FromSeconds(1))]);
    }

    public async Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken)
    {
        await LoadAsync();
        var backend = _backend.Value;
        var now = _time.GetUtcNow();
        var list = new List<KeyInfo>();
        foreach (var name in new[] { SigningKeyName, EncryptionKeyName, ContextKeyName })
        {
            var current = await backend.CurrentAsync(name, name == ContextKeyName ? NewEcPem : NewRsaPem, cancellationToken);
            list.Add(new KeyInfo { Id = KeyIdOf(name, current.Pem), Kind = name, Status = "current", Created = current.Created });
            if (name == ContextKeyName)
            {
                var next = await backend.CurrentAsync(ContextNextName, NewEcPem, cancellationToken);
                list.Add(new KeyInfo { Id = KeyIdOf(name, next.Pem), Kind = name, Status = "next", Created = next.Created });
            }

            list.AddRange((await backend.RetiringAsync(name, cancellationToken)).Select(r => new KeyInfo
            {
                Id = KeyIdOf(name, r.Pem),
                Kind = name,
                Status = r.RetiresAt > now ? "retiring" : "retired",
                Created = r.Created,
                SupersededAt = r.SupersededAt,
                RetiresAt = r.RetiresAt,
            }));
        }

        var keys = _services.GetRequiredService<IKeyManager>().GetAllKeys().OrderByDescending(k => k.ActivationDate).ToList();
        var defaultKey = keys.FirstOrDefault(k => !k.IsRevoked && k.ActivationDate <= now && k.ExpirationDate > now);
        list.AddRange(keys.Select(k => new KeyInfo
        {
            Id = k.KeyId.ToString(),
            Kind = DataProtectionKind,
            Status = k == defaultKey ? "current" : k.IsRevoked || k.ExpirationDate <= now ? "retired" : k.ActivationDate > now ? "next" : "retiring",
            Created = k.CreationDate,
            RetiresAt = k.ExpirationDate,
        }));
        return list;
    }

    public void Dispose()
    {
        _reload.Dispose();
        if (_backend.IsValueCreated && _backend.Value is IDisposable disposable)
        {
            disposable.Dispose();
        }
    }

    /// <summary>The key with its id: the first 16 characters of its public key's SHA-256, base64url.</summary>
    public static RsaSecurityKey WithKeyId(RSA rsa)
    {
        var kid = Base64UrlEncoder.Encode(SHA256.HashData(rsa.ExportSubjectPublicKeyInfo()))[..16];
        return new RsaSecurityKey(rsa) { KeyId = kid };
    }

    /// <summary>The tenant-context key's id: the RFC 7638 thumbprint of its public key, as the gateway names it.</summary>
    public static string ContextKeyId(string pem)
    {
        using var ecdsa = ECDsa.Create();
        ecdsa.ImportFromPem(pem);
        using var publicOnly = ECDsa.Create(ecdsa.ExportParameters(false));
        var jwk = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(publicOnly));
        return Base64UrlEncoder.Encode(jwk.ComputeJwkThumbprint());
    }

    private static string KeyIdOf(string name, string pem) => name == ContextKeyName ? ContextKeyId(pem) : Rsa(pem).KeyId!;

    private static RsaSecurityKey Rsa(string pem)
    {
        var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        return WithKeyId(rsa);
    }

    private static string NewRsaPem()
    {
        using var rsa = RSA.Create(2048);
        return rsa.ExportPkcs8PrivateKeyPem();
    }

    private static string NewEcPem()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return key.ExportPkcs8PrivateKeyPem();
    }

    // OpenIddict reads its keys while configuring its options, which is synchronous; the start-up
    // service has loaded them by then.
    private State Current()
    {
        if (_state is { } state)
        {
            return state;
        }

        LoadAsync().GetAwaiter().GetResult();
        return _state!;
    }

    private async Task<State> ReadAsync(CancellationToken cancellationToken)
    {
        var backend = _backend.Value;
        var now = _time.GetUtcNow();
        async Task<List<KeyEntry>> Live(string name, Func<string> create)
        {
            var current = await backend.CurrentAsync(name, create, cancellationToken);
            var retiring = (await backend.RetiringAsync(name, cancellationToken)).Where(r => r.RetiresAt > now && r.Pem != current.Pem);
            return [current, .. retiring];
        }

        var signing = await Live(SigningKeyName, NewRsaPem);
        var encryption = await Live(EncryptionKeyName, NewRsaPem);
        var context = await Live(ContextKeyName, NewEcPem);
        var next = await backend.CurrentAsync(ContextNextName, NewEcPem, cancellationToken);
        var rsaSigning = signing.Select(e => Rsa(e.Pem)).GroupBy(k => k.KeyId).Select(g => g.First()).ToList();
        var rsaEncryption = encryption.Select(e => Rsa(e.Pem)).GroupBy(k => k.KeyId).Select(g => g.First()).ToList();
        List<string> published = [context[0].Pem, next.Pem, .. context.Skip(1).Select(e => e.Pem)];
        published = [.. published.Distinct(StringComparer.Ordinal)];
        var fingerprint = string.Join(',', rsaSigning.Select(k => k.KeyId)) + ";" + string.Join(',', rsaEncryption.Select(k => k.KeyId)) + ";"
            + string.Join(',', published.Select(p => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(p)))[..12]));
        return new State(rsaSigning, rsaEncryption, context[0].Pem, ContextKeyId(context[0].Pem), published, fingerprint);
    }

    private sealed record State(List<RsaSecurityKey> Signing, List<RsaSecurityKey> Encryption, string ContextPem, string ContextKeyId, List<string> ContextPublished, string Fingerprint);

    private static partial class Log
    {
        [LoggerMessage(2, LogLevel.Information, "Key ring rotated: {Names} ({Lost} already rotated by another replica)")]
        public static partial void Rotated(ILogger logger, string names, int lost);

        [LoggerMessage(3, LogLevel.Information, "Key ring reloaded: signing key {SigningKeyId}, tenant-context key {ContextKeyId}")]
        public static partial void Reloaded(ILogger logger, string signingKeyId, string contextKeyId);
    }
}

/// <summary>
/// Loads the key ring before the host serves: a wrong master key stops start-up with one line instead of
/// failing each request. On a shared store it also opens the Data Protection key ring once (creating its
/// first key if there is none), so tenant database passwords other replicas stored can be read.
/// </summary>
internal sealed partial class KeyRingStartup(KeyRing keys, IServiceProvider services, IOptions<TenantryOptions> options, ILogger<KeyRingStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await keys.LoadAsync();
        if (!KeyRing.InStore(options.Value))
        {
            return;
        }

        var probe = services.GetRequiredService<IDataProtectionProvider>().CreateProtector("Tenantry.KeyRing.Probe");
        try
        {
            _ = probe.Unprotect(probe.Protect(Encoding.UTF8.GetBytes("ready")));
        }
        catch (CryptographicException ex)
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                "Tenantry:MasterKey: the Data Protection keys in Tenantry:Store do not open with this master key (TENANTRY_MASTER_KEY).",
                ex);
        }

        Log.Loaded(logger);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Key ring loaded from the store, opened with the master key")]
        public static partial void Loaded(ILogger logger);
    }
}

/// <summary>Part of <c>/readyz</c>: the key ring is loaded.</summary>
internal sealed class KeyRingHealthCheck(KeyRing keys) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(keys.IsLoaded ? HealthCheckResult.Healthy("key ring loaded") : HealthCheckResult.Unhealthy("key ring not loaded"));
}
