using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.Data;

namespace Tenantry.AspNetCore;

/// <summary>
/// Where an app instance finds its tenants' data, from the instance contract: a dedicated instance's
/// own database in <c>TENANTRY_DATABASE</c>; for a shared instance, each pool or bridge tenant's
/// database from <c>TENANTRY_DATA_URL</c>, asked with the request's own tenant-context token (only the
/// gateway signs those, so an instance learns a tenant's data only while it serves that tenant's
/// requests). An answer is kept for <see cref="RelocateAfter"/>; a tenant that is not active gets none
/// (the app answers 503).
/// </summary>
public sealed class InstanceDataLocator(IOptions<TenantryAppOptions> options, IHttpContextAccessor accessor, TimeProvider time) : ITenantDataLocator, IDisposable
{
    /// <summary>How long an answer of the data endpoint is kept before it is asked again.</summary>
    public static readonly TimeSpan RelocateAfter = TimeSpan.FromSeconds(2);

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly ConcurrentDictionary<Guid, (TenantDataContext? Context, long At)> _known = new();

    /// <summary>True when this instance can locate data this way (it was started with the instance contract).</summary>
    public bool Configured => options.Value.Database is not null || options.Value.DataUrl is not null;

    /// <inheritdoc />
    public async Task<TenantDataContext?> LocateAsync(Guid tenantId, string slug, IsolationModel isolation, CancellationToken cancellationToken = default)
    {
        var o = options.Value;
        if (o.TenantId is not null)
        {
            return o.TenantId == tenantId && o.Database is { } own ? Context(tenantId, slug, isolation, own) : null;
        }

        if (_known.TryGetValue(tenantId, out var known) && time.GetElapsedTime(known.At) < RelocateAfter
            && known.Context is { } c && c.Slug == slug && c.Isolation == isolation)
        {
            return c;
        }

        if (o.DataUrl is null || accessor.HttpContext?.Request.Headers[TenantContextToken.Header] is not { Count: 1 } token)
        {
            return null;
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, o.DataUrl);
        request.Headers.Add(TenantContextToken.Header, token[0]);
        using var response = await _http.SendAsync(request, cancellationToken);
        if (response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
        {
            _known.TryRemove(tenantId, out _);
            return null;
        }

        response.EnsureSuccessStatusCode();
        var answer = await response.Content.ReadFromJsonAsync<DataAnswer>(cancellationToken)
            ?? throw new InvalidOperationException("The data endpoint sent an empty answer.");
        var context = Context(tenantId, slug, isolation, answer.Database);
        _known[tenantId] = (context, time.GetTimestamp());
        return context;
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    /// <summary>A <c>TENANTRY_DATABASE</c>-style connection as the tenant's data context: <c>Data Source=</c> a SQLite file, or an Npgsql connection string.</summary>
    public static TenantDataContext Context(Guid tenantId, string slug, IsolationModel isolation, string database)
    {
        ArgumentNullException.ThrowIfNull(database);
        TenantDataTarget target;
        if (database.StartsWith("Data Source=", StringComparison.OrdinalIgnoreCase))
        {
            var file = database["Data Source=".Length..];
            target = isolation == IsolationModel.Pool ? new SqlitePoolTarget(file) : new SqliteFileTarget(file);
        }
        else
        {
            var builder = new Npgsql.NpgsqlConnectionStringBuilder(database);
            target = isolation switch
            {
                IsolationModel.Pool => new PostgresPoolTarget(database),
                IsolationModel.Bridge => new PostgresBridgeTarget(PostgresEndpoint.FromConnectionString(database), builder.Database!, builder.SearchPath!, builder.Username!, builder.Password!),
                _ => PostgresSiloTarget.FromConnectionString(database),
            };
        }

        return new TenantDataContext { TenantId = tenantId, Slug = slug, Isolation = isolation, Target = target };
    }

    private sealed record DataAnswer(Guid TenantId, string Isolation, string Database, string? Schema);
}

/// <summary>Registers <see cref="InstanceDataLocator"/>.</summary>
public static class InstanceDataExtensions
{
    /// <summary>Registers <see cref="InstanceDataLocator"/> as the app's <see cref="ITenantDataLocator"/>.</summary>
    public static IServiceCollection AddTenantryInstanceData(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddHttpContextAccessor();
        services.TryAddSingleton<InstanceDataLocator>();
        services.TryAddSingleton<ITenantDataLocator>(sp => sp.GetRequiredService<InstanceDataLocator>());
        return services;
    }
}
