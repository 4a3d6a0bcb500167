using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>A key as the ring holds it: its private key (PEM), when it was made, and its version for a rotation's compare.</summary>
internal sealed record KeyEntry(string Name, string Pem, DateTimeOffset Created, object Version, DateTimeOffset? SupersededAt = null, DateTimeOffset? RetiresAt = null);

/// <summary>One name's rotation: <see cref="Current"/> is replaced by <see cref="NewPem"/>; a name that keeps a next key gets <see cref="NextPem"/>.</summary>
internal sealed record KeyRotationPlan(string Name, KeyEntry Current, string NewPem, string? NextName, string? NextPem);

/// <summary>Where the ring's keys are kept: files in the data dir, or the shared store.</summary>
internal interface IKeyBackend
{
    Task<KeyEntry> CurrentAsync(string name, Func<string> create, CancellationToken cancellationToken);

    Task<List<KeyEntry>> RetiringAsync(string name, CancellationToken cancellationToken);

    /// <summary>Applies the plans whose current key is still the one read (all at once where the backend can); the names rotated.</summary>
    Task<List<string>> RotateAsync(IReadOnlyList<KeyRotationPlan> plans, DateTimeOffset now, DateTimeOffset retiresAt, Func<IReadOnlyList<string>, AuditEvent> audit, CancellationToken cancellationToken);
}

/// <summary>The shared store's key ring: every key sealed with the master key, bound to its name; a rotation is one transaction.</summary>
internal sealed class StoreKeyBackend(IControlPlaneDatabase db, MasterKey master, TimeProvider time) : IKeyBackend
{
    public async Task<KeyEntry> CurrentAsync(string name, Func<string> create, CancellationToken cancellationToken)
    {
        var row = await KeyStore.GetOrCreateRowAsync(db, name, () => Seal(name, create()), time.GetUtcNow(), cancellationToken);
        return new KeyEntry(name, Open(name, row.Sealed), row.Created, row);
    }

    public async Task<List<KeyEntry>> RetiringAsync(string name, CancellationToken cancellationToken) =>
        [.. (await KeyStore.RetiringAsync(db, name, cancellationToken)).Select(r => new KeyEntry(name, Open(name, r.Sealed), r.Created, r, r.SupersededAt, r.RetiresAt))];

    public Task<List<string>> RotateAsync(IReadOnlyList<KeyRotationPlan> plans, DateTimeOffset now, DateTimeOffset retiresAt, Func<IReadOnlyList<string>, AuditEvent> audit, CancellationToken cancellationToken) =>
        KeyStore.RotateAsync(
            db,
            [.. plans.Select(p => new KeyStore.Swap(
                p.Name,
                (KeyStore.SealedRow)p.Current.Version,
                Seal(p.Name, p.NewPem),
                p.NextName is { } nextName ? (nextName, Seal(nextName, p.NextPem!)) : null))],
            now,
            retiresAt,
            audit,
            cancellationToken);

    // The token keys were sealed as PKCS#8 DER from the start; the other secrets as text.
    private string Seal(string name, string pem) => master.Seal(name, IsRsa(name) ? RsaDer(pem) : Encoding.UTF8.GetBytes(pem));

    private string Open(string name, string sealedValue)
    {
        byte[] bytes;
        try
        {
            bytes = master.Open(name, sealedValue);
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                "Tenantry:MasterKey: the keys in Tenantry:Store do not open with this master key (TENANTRY_MASTER_KEY); start every replica with the master key the store's keys were sealed with.",
                ex);
        }

        if (!IsRsa(name))
        {
            return Encoding.UTF8.GetString(bytes);
        }

        using var rsa = RSA.Create();
        rsa.ImportPkcs8PrivateKey(bytes, out _);
        return rsa.ExportPkcs8PrivateKeyPem();
    }

    private static bool IsRsa(string name) => name is KeyRing.SigningKeyName or KeyRing.EncryptionKeyName;

    private static byte[] RsaDer(string pem)
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        return rsa.ExportPkcs8PrivateKey();
    }
}

/// <summary>
/// The embedded store's key ring: each current key a 0600 PEM file in the data dir (the tenant-context key at
/// <c>Tenantry:Gateway:ContextSigningKeyFile</c>), the keys a rotation replaced in <c>keys/retiring/</c>. Every file
/// is written whole (<see cref="AtomicFile"/>), the replaced key before its successor, so a crash between the two
/// leaves a key listed twice, never a token without its key.
/// </summary>
internal sealed class FileKeyBackend(string dataPath, string contextKeyFile, IControlPlaneDatabase db) : IKeyBackend, IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly SemaphoreSlim _lock = new(1, 1);

    private string RetiringDir => Path.Combine(dataPath, "keys", "retiring");

    public async Task<KeyEntry> CurrentAsync(string name, Func<string> create, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken);
        try
        {
            var path = PathOf(name);
            var pem = File.Exists(path) ? await File.ReadAllTextAsync(path, cancellationToken) : null;
            // A next key equal to its current one is what a crash in the middle of a rotation leaves: make a new next.
            if (pem is null || (name == KeyRing.ContextNextName && File.Exists(PathOf(KeyRing.ContextKeyName))
                && pem == await File.ReadAllTextAsync(PathOf(KeyRing.ContextKeyName), cancellationToken)))
            {
                pem = create();
                WriteSecret(path, pem);
            }

            var created = new DateTimeOffset(File.GetLastWriteTimeUtc(path), TimeSpan.Zero);
            return new KeyEntry(name, pem, created, created);
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<List<KeyEntry>> RetiringAsync(string name, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(RetiringDir))
        {
            return [];
        }

        var entries = new List<KeyEntry>();
        foreach (var file in Directory.EnumerateFiles(RetiringDir, name + ".*.json"))
        {
            var stored = JsonSerializer.Deserialize<RetiredFile>(await File.ReadAllTextAsync(file, cancellationToken), Json);
            if (stored is not null && stored.Name == name)
            {
                entries.Add(new KeyEntry(name, stored.Pem, stored.CreatedAt, file, stored.SupersededAt, stored.RetiresAt));
            }
        }

        return [.. entries.OrderByDescending(e => e.SupersededAt)];
    }

    public async Task<List<string>> RotateAsync(IReadOnlyList<KeyRotationPlan> plans, DateTimeOffset now, DateTimeOffset retiresAt, Func<IReadOnlyList<string>, AuditEvent> audit, CancellationToken cancellationToken)
    {
        var rotated = new List<string>();
        await _lock.WaitAsync(cancellationToken);
        try
        {
            foreach (var plan in plans)
            {
                var path = PathOf(plan.Name);
                if (!File.Exists(path) || await File.ReadAllTextAsync(path, cancellationToken) != plan.Current.Pem)
                {
                    continue;
                }

                var stamp = now.UtcTicks.ToString(CultureInfo.InvariantCulture);
                WriteSecret(
                    Path.Combine(RetiringDir, $"{plan.Name}.{stamp}.json"),
                    JsonSerializer.Serialize(new RetiredFile(plan.Name, plan.Current.Pem, plan.Current.Created, now, retiresAt), Json));
                WriteSecret(path, plan.NewPem);
                if (plan.NextName is { } next)
                {
                    WriteSecret(PathOf(next), plan.NextPem!);
                }

                rotated.Add(plan.Name);
            }

            Prune(now);
        }
        finally
        {
            _lock.Release();
        }

        if (rotated.Count > 0)
        {
            await db.WriteAsync((c, tx) => AuditLog.AppendAsync(c, tx, audit(rotated)), cancellationToken);
        }

        return rotated;
    }

    public void Dispose() => _lock.Dispose();

    private static void WriteSecret(string path, string content) => AtomicFile.Write(path, content, UnixFileMode.UserRead | UnixFileMode.UserWrite);

    private void Prune(DateTimeOffset now)
    {
        foreach (var file in Directory.EnumerateFiles(RetiringDir, "*.json"))
        {
            var stored = JsonSerializer.Deserialize<RetiredFile>(File.ReadAllText(file), Json);
            if (stored is not null && stored.RetiresAt < now - TimeSpan.FromDays(30))
            {
                File.Delete(file);
            }
        }
    }

    private string PathOf(string name) => name switch
    {
        KeyRing.ContextKeyName => contextKeyFile,
        KeyRing.ContextNextName => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(contextKeyFile))!, Path.GetFileNameWithoutExtension(contextKeyFile) + ".next.pem"),
        _ => Path.Combine(dataPath, "keys", name + ".pem"),
    };

    private sealed record RetiredFile(string Name, string Pem, DateTimeOffset CreatedAt, DateTimeOffset SupersededAt, DateTimeOffset RetiresAt);
}
