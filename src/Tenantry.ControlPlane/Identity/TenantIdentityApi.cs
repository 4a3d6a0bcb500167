using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Identity;

public sealed record InviteUserRequest(string? Email, string? Role);

/// <summary>The invited user; <c>initialPassword</c> is shown in this response only.</summary>
public sealed record InvitedUserResponse(Guid TenantId, string Email, string Role, string Status, string InitialPassword);

/// <param name="LockedUntil">Set while the user is locked out after repeated failed sign-ins (<c>POST …/unlock</c> ends it early).</param>
public sealed record TenantUserResponse(Guid TenantId, string Email, string Role, string Status, bool Disabled, DateTimeOffset CreatedAt, DateTimeOffset? LockedUntil);

public sealed record CreateClientRequest(string? Name);

/// <summary>A tenant's machine client; <c>clientSecret</c> is shown in this response only.</summary>
public sealed record CreatedClientResponse(Guid TenantId, string ClientId, string ClientSecret, string Name);

/// <summary>Operator endpoints for a tenant's users (roles admin, member) and machine clients.</summary>
public static class TenantIdentityApi
{
    public static RouteGroupBuilder MapTenantIdentityApi(this RouteGroupBuilder v1)
    {
        var tenants = v1.MapGroup("/tenants").WithTags("Tenant identity");
        tenants.MapPost("/{id}/users", Invite)
            .Accepts<InviteUserRequest>("application/json")
            .WithSummary("Invite a tenant user (role admin or member); 201 with an initial password shown once. Also completes the invitation of the admin created at onboarding.");
        tenants.MapGet("/{id}/users", ListUsers).WithSummary("The tenant's users, their roles, and lockedUntil while one is locked out.");
        tenants.MapPost("/{id}/users/{userId}/unlock", Unlock)
            .WithSummary("End a user's lockout after failed sign-ins (userId: the user's e-mail address) and reset its failure count.");
        tenants.MapPost("/{id}/clients", CreateClient)
            .Accepts<CreateClientRequest>("application/json")
            .WithSummary("Create a machine client of the tenant (client_credentials); 201 with its secret shown once.");
        return v1;
    }

    private static async Task<Results<Created<InvitedUserResponse>, ProblemHttpResult>> Invite(
        string id, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, TenantUserStore users, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<InviteUserRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var email = TenantUserStore.NormalizeEmail(body!.Email);
        var role = body.Role ?? TenantRoles.Member;
        var errors = new Dictionary<string, string[]>();
        if (email is null)
        {
            errors["email"] = ["A plain e-mail address (name@domain) is required."];
        }

        if (!TenantRoles.IsUserRole(role))
        {
            errors["role"] = ["The role is 'admin' or 'member'."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), http.RequestAborted);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        if (tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded or TenantStatus.Failed)
        {
            return ApiError.Conflict("tenant-not-invitable", "The tenant takes no new users.", $"The tenant is {tenant.Status.ToWire()}.").ToResult();
        }

        var (result, user, password) = await users.InviteAsync(tenant, email!, role, http.RequestAborted);
        if (result == TenantUserStore.InviteResult.AlreadyActive)
        {
            return ApiError.Conflict("user-exists", "The user already exists.", $"{email} already has a password in tenant '{tenant.Slug}'.").ToResult();
        }

        await AuditAsync(db, time, http, tenant.Id, "tenant.user.invited", new JsonObject { ["email"] = email, ["role"] = role }, http.RequestAborted);
        return TypedResults.Created(
            $"/v1/tenants/{tenant.Id}/users",
            new InvitedUserResponse(tenant.Id, user!.Email, user.Role, user.Status, password!));
    }

    private static async Task<Results<Ok<Page<TenantUserResponse>>, ProblemHttpResult>> ListUsers(
        string id, IControlPlaneDatabase db, ITenantRegistry tenants, TenantUserStore users, TimeProvider time, CancellationToken cancellationToken)
    {
        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), cancellationToken);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        var list = await users.ListAsync(tenant.Id, cancellationToken);
        return TypedResults.Ok(new Page<TenantUserResponse>(
            [.. list.Select(u => Response(u, time.GetUtcNow()))], null));
    }

    private static async Task<Results<Ok<TenantUserResponse>, ProblemHttpResult>> Unlock(
        string id, string userId, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, TenantUserStore users, TimeProvider time)
    {
        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), http.RequestAborted);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        var email = TenantUserStore.NormalizeEmail(userId);
        var user = email is null ? null : await users.UnlockAsync(tenant.Id, email, http.RequestAborted);
        if (user is null)
        {
            return ApiError.NotFound($"User '{userId}' of tenant '{tenant.Slug}'").ToResult();
        }

        await AuditAsync(db, time, http, tenant.Id, "tenant.user.unlocked", new JsonObject { ["email"] = user.Email }, http.RequestAborted);
        return TypedResults.Ok(Response(user, time.GetUtcNow()));
    }

    /// <summary>A lockout that has run out is not shown (the next sign-in clears it).</summary>
    private static TenantUserResponse Response(TenantUser u, DateTimeOffset now) =>
        new(u.TenantId, u.Email, u.Role, u.Status, u.Disabled, u.CreatedAt, u.LockedUntil > now ? u.LockedUntil : null);

    private static async Task<Results<Created<CreatedClientResponse>, ProblemHttpResult>> CreateClient(
        string id, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, ClientStore clients, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateClientRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var name = body!.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 100 || name.Any(char.IsControl))
        {
            return ApiError.Validation("name", "A name of 1-100 printable characters is required.").ToResult();
        }

        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), http.RequestAborted);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        if (tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded or TenantStatus.Failed)
        {
            return ApiError.Conflict("tenant-not-invitable", "The tenant takes no new clients.", $"The tenant is {tenant.Status.ToWire()}.").ToResult();
        }

        var clientId = $"{tenant.Slug}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6))}";
        var secret = ClientStore.NewSecret();
        await clients.UpsertAsync(clientId, secret, name, tenant.Id, [], http.RequestAborted);
        if (tenant.Status == TenantStatus.Suspended)
        {
            // Reactivation enables it with the tenant's other clients; a provisioning tenant's client simply gets no token until it is active.
            await clients.DisableAsync(clientId, http.RequestAborted);
        }

        await AuditAsync(db, time, http, tenant.Id, "tenant.client.created", new JsonObject { ["clientId"] = clientId, ["name"] = name }, http.RequestAborted);
        return TypedResults.Created($"/v1/tenants/{tenant.Id}/clients/{clientId}", new CreatedClientResponse(tenant.Id, clientId, secret, name));
    }

    private static Task AuditAsync(IControlPlaneDatabase db, TimeProvider time, HttpContext http, Guid tenantId, string action, JsonObject detail, CancellationToken cancellationToken) =>
        db.WriteAsync((c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, tenantId, action, detail, time.GetUtcNow())), cancellationToken);
}
