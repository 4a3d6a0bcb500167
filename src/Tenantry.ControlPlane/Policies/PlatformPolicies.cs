using System.Text.RegularExpressions;
using Tenantry.Policies;

namespace Tenantry.ControlPlane.Policies;

/// <summary>A tenant principal (a tenant user or machine client) as the policies see it.</summary>
public sealed record TenantPrincipal(Guid TenantId, string Slug, string Tier, string Name, string Role, string Type)
{
    public const string AdminRole = "admin";
    public const string MemberRole = "member";
    public const string UserType = "user";
    public const string ClientType = "client";
    public const string OperatorType = "operator";
}

/// <summary>
/// The platform's action and resource names and its built-in policies. Resources are
/// <c>trn:tenantry:storage::{tenant}:tenants/{tenant}/{key}</c> — the same layout as an AWS ARN, so
/// policies read the same and translate to S3 one for one.
/// </summary>
public static partial class PlatformPolicies
{
    public const string GetObject = "storage:GetObject";
    public const string PutObject = "storage:PutObject";
    public const string DeleteObject = "storage:DeleteObject";
    public const string ListObjects = "storage:ListObjects";

    /// <summary>Every storage resource name starts so; the tenant's slug and the object's full key follow.</summary>
    public const string StorageResourcePrefix = "trn:tenantry:storage::";

    public static readonly IReadOnlyList<string> StorageActions = [GetObject, PutObject, DeleteObject, ListObjects];

    /// <summary>Variables a tier template may use; replaced when the template is applied to a tenant.</summary>
    public static readonly IReadOnlyList<string> TemplateVariables = ["${tenant}", "${tenantId}", "${tier}"];

    /// <summary>The tier template used when the operator has not set one: the tenant's own prefix, nothing else.</summary>
    public const string DefaultTemplate = """
        {
          "Version": "2012-10-17",
          "Statement": [
            {
              "Sid": "TenantObjects",
              "Effect": "Allow",
              "Action": ["storage:GetObject", "storage:PutObject", "storage:DeleteObject", "storage:ListObjects"],
              "Resource": "trn:tenantry:storage::${tenant}:tenants/${tenant}/*"
            }
          ]
        }
        """;

    /// <summary>What a role may do at most; the tier's session policy then narrows it to the tenant.</summary>
    public static string RolePolicy(string role) => role == TenantPrincipal.AdminRole
        ? """{"Version":"2012-10-17","Statement":[{"Sid":"AdminStorage","Effect":"Allow","Action":"storage:*","Resource":"trn:tenantry:storage::*"}]}"""
        : """{"Version":"2012-10-17","Statement":[{"Sid":"MemberStorage","Effect":"Allow","Action":["storage:GetObject","storage:ListObjects","storage:PutObject"],"Resource":"trn:tenantry:storage::*"}]}""";

    /// <summary>Applies a tier template to a tenant. Slug, id and tier are validated names, so plain replacement is safe JSON.</summary>
    public static string Render(string template, string slug, Guid tenantId, string tier)
    {
        ArgumentNullException.ThrowIfNull(template);
        return template
            .Replace("${tenant}", slug, StringComparison.Ordinal)
            .Replace("${tenantId}", tenantId.ToString(), StringComparison.Ordinal)
            .Replace("${tier}", tier, StringComparison.Ordinal);
    }

    /// <summary>The condition keys of a principal's requests.</summary>
    public static RequestContext Context(TenantPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        return new RequestContext()
            .Set("tenantry:TenantId", principal.TenantId.ToString())
            .Set("tenantry:TenantSlug", principal.Slug)
            .Set("tenantry:Tier", principal.Tier)
            .Set("tenantry:Role", principal.Role)
            .Set("tenantry:PrincipalType", principal.Type)
            .Set("aws:username", principal.Name)
            .Set("aws:PrincipalTag/TenantId", principal.TenantId.ToString())
            .Set("aws:PrincipalTag/Tier", principal.Tier);
    }

    public static bool IsValidPolicyName(string? name) => name is not null && NamePattern().IsMatch(name);

    [GeneratedRegex(@"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}
