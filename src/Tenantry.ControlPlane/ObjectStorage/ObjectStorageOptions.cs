using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary><c>Tenantry:ObjectStorage</c>: where tenant objects live.</summary>
public sealed class ObjectStorageOptions
{
    public const string Section = "Tenantry:ObjectStorage";

    /// <summary><c>local</c> (folders in the data dir, the default) or <c>s3</c>.</summary>
    public string Provider { get; set; } = "local";

    public S3ObjectStoreOptions S3 { get; set; } = new();
}

public sealed class S3ObjectStoreOptions
{
    /// <summary>The S3 endpoint, e.g. <c>https://s3.eu-west-1.amazonaws.com</c> or a compatible server.</summary>
    public string ServiceUrl { get; set; } = "";

    public string Bucket { get; set; } = "";

    public string Region { get; set; } = "us-east-1";

    public string AccessKey { get; set; } = "";

    public string SecretKey { get; set; } = "";

    /// <summary>Path-style URLs (<c>host/bucket/key</c>), which S3-compatible servers expect.</summary>
    public bool ForcePathStyle { get; set; } = true;
}

internal sealed class ObjectStorageOptionsValidator : IValidateOptions<ObjectStorageOptions>
{
    public ValidateOptionsResult Validate(string? name, ObjectStorageOptions options)
    {
        if (options.Provider is not ("local" or "s3"))
        {
            return ValidateOptionsResult.Fail($"{ObjectStorageOptions.Section}:Provider is 'local' or 's3', not '{options.Provider}'.");
        }

        if (options.Provider == "s3")
        {
            var missing = new[] { ("ServiceUrl", options.S3.ServiceUrl), ("Bucket", options.S3.Bucket), ("AccessKey", options.S3.AccessKey), ("SecretKey", options.S3.SecretKey) }
                .Where(p => string.IsNullOrWhiteSpace(p.Item2)).Select(p => $"{ObjectStorageOptions.Section}:S3:{p.Item1}").ToList();
            if (missing.Count > 0)
            {
                return ValidateOptionsResult.Fail($"The S3 object storage needs {string.Join(", ", missing)}.");
            }

            if (!Uri.TryCreate(options.S3.ServiceUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                return ValidateOptionsResult.Fail($"{ObjectStorageOptions.Section}:S3:ServiceUrl is an http(s) URL.");
            }
        }

        return ValidateOptionsResult.Success;
    }
}

public static class ObjectStorageServiceCollectionExtensions
{
    /// <summary>Tenant object storage behind <see cref="ITenantObjectStorage"/>, over the engine <c>Tenantry:ObjectStorage:Provider</c> names (chosen with the other engines).</summary>
    public static IServiceCollection AddTenantryObjectStorage(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<ObjectStorageOptions>().BindConfiguration(ObjectStorageOptions.Section).ValidateSettings(ObjectStorageOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ObjectStorageOptions>, ObjectStorageOptionsValidator>());
        services.TryAddSingleton<TenantStorageUsage>();
        services.TryAddSingleton<ITenantStorageQuota>(sp => sp.GetRequiredService<TenantStorageUsage>());
        services.TryAddSingleton<ITenantObjectStorage, TenantObjectStorage>();
        services.AddHostedService<StorageLeftovers>();
        return services;
    }
}
