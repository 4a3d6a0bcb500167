using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Mail;
using OpenIddict.Abstractions;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Identity;

/// <param name="Delivery">
/// <c>password</c> (operators' default): a generated initial password, in the response only;
/// <c>mail</c> (always, for a tenant admin's token): a mail with a one-time link to choose a password.
/// </param>
public sealed record InviteUserRequest(string? Email, string? Role, string? Delivery = null);

/// <summary>The invited user; <c>initialPassword</c> is shown in this response only (password delivery).</summary>
public sealed record InvitedUserResponse(
    Guid TenantId, string Email, string Role, string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? InitialPassword,
    string Delivery = TenantIdentityApi.PasswordDelivery,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTimeOffset? InvitationExpiresAt = null);

/// <param name="LockedUntil">Set while the user is locked out after repeated failed sign-ins (<c>POST …/unlock</c> ends it early).</param>
public sealed record TenantUserResponse(Guid TenantId, string Email, string Role, string Status, bool Disabled, DateTimeOffset CreatedAt, DateTimeOffset? LockedUntil);

public sealed record CreateClientRequest(string? Name);

/// <summary>A tenant's machine client; <c>clientSecret</c> is shown in this response only.</summary>
public sealed record CreatedClientResponse(Guid TenantId, string ClientId, string ClientSecret, string Name);

/// <summary>Operator endpoints for a tenant's users (roles admin, member) and machine clients; tenant admins invite their own users.</summary>
public static class TenantIdentityApi
{
    public const string PasswordDelivery = "password";
    public const string MailDelivery = "mail";

    /// <summary>Inviting users: operators for any tenant, a tenant's admins for their own (by mail only).</summary>
    public static RouteGroupBuilder MapTenantInvitationsApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/tenants/{id}/users", Invite).WithTags("Tenant identity")
            .Accepts<InviteUserRequest>("application/json")
            .WithSummary("Invite a tenant user {email, role: admin|member, delivery: password|mail}; 201. password (operators' default): an initial password shown once; mail (always, with a tenant admin's token, for its own tenant only): a one-time link to /invite/{token}. Also completes the invitation of the admin created at onboarding.");
        return v1;
    }

    public static RouteGroupBuilder MapTenantIdentityApi(this RouteGroupBuilder v1)
    {
        var tenants = v1.MapGroup("/tenants").WithTags("Tenant identity");
        tenants.MapGet("/{id}/users", ListUsers).WithSummary("The tenant's users, their roles, and lockedUntil while one is locked out.");
        tenants.MapPost("/{id}/users/{userId}/unlock", Unlock)
            .WithSummary("End a user's lockout after failed sign-ins (userId: the user's e-mail address) and reset its failure count.");
        tenants.MapPost("/{id}/clients", CreateClient)
            .Accepts<CreateClientRequest>("application/json")
            .WithSummary("Create a machine client of the tenant (client_credentials); 201 with its secret shown once.");
        return v1;
    }

    private static async Task<Results<Created<InvitedUserResponse>, ProblemHttpResult>> Invite(
        string id, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, TenantUserStore users, InvitationStore invitations, MailOutbox mails, TimeProvider time)
    {
        // An operator invites anyone anywhere; a tenant token must be an admin user's, of the URL's tenant.
        var isOperator = http.User.HasScope(IdentityApi.AdminScope);
        Guid? own = null;
        if (!isOperator)
        {
            if (http.User.FindFirst(Claims.Role)?.Value != TenantRoles.Admin || !Guid.TryParse(http.User.FindFirst(IdentityApi.TenantIdClaim)?.Value, out var tenantOfToken))
            {
                return new ApiError(StatusCodes.Status403Forbidden, "tenant-admin-required", "Only operators and the tenant's admins invite users.",
                    "Use an operator token or the token of an admin user of the tenant.").ToResult();
            }

            own = tenantOfToken;
        }

        var (body, error) = await JsonBody.ReadAsync<InviteUserRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var email = TenantUserStore.NormalizeEmail(body!.Email);
        var role = body.Role ?? TenantRoles.Member;
        var delivery = body.Delivery ?? (isOperator ? PasswordDelivery : MailDelivery);
        var errors = new Dictionary<string, string[]>();
        if (email is null)
        {
            errors["email"] = ["A plain e-mail address (name@domain) is required."];
        }

        if (!TenantRoles.IsUserRole(role))
        {
            errors["role"] = ["The role is 'admin' or 'member'."];
        }

        if (delivery is not (PasswordDelivery or MailDelivery))
        {
            errors["delivery"] = ["The delivery is 'password' (an initial password in the response) or 'mail' (a one-time link by mail)."];
        }
        else if (!isOperator && delivery == PasswordDelivery)
        {
            // A password in the response would let the admin sign in as a mailbox it does not own.
            errors["delivery"] = ["A tenant admin's invitations are mailed: only operators get an initial password."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), http.RequestAborted);
        if (own is not null && tenant?.Id != own)
        {
            // Another tenant (or none): refused the same way, and audited, so the token learns nothing of other tenants.
            await db.WriteAsync(
                (c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(
                    http, own, "tenant.user.invited", new JsonObject { ["targetTenant"] = id.Length > 100 ? id[..100] : id, ["email"] = email, ["reason"] = "The token belongs to another tenant." },
                    time.GetUtcNow(), outcome: "denied")),
                http.RequestAborted);
            return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "A tenant admin invites users of its own tenant only.",
                $"This token belongs to another tenant than '{(id.Length > 100 ? id[..100] : id)}'.").ToResult();
        }

        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        if (tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded or TenantStatus.Failed)
        {
            return ApiError.Conflict("tenant-not-invitable", "The tenant takes no new users.", $"The tenant is {tenant.Status.ToWire()}.").ToResult();
        }

        if (delivery == MailDelivery)
        {
            var invited = await db.WriteAsync<InvitedUserResponse?>(
                async (c, tx) =>
                {
                    if (await InvitationStore.HasPasswordAsync(c, tx, tenant.Id, email!))
                    {
                        return null;
                    }

                    var now = time.GetUtcNow();
                    var invitation = await invitations.IssueAsync(c, tx, tenant, email!, role, http.User.Actor(), now);
                    var (subject, text) = MailTemplates.ForInvitation(tenant.Name, tenant.Slug, email!, role, invitation.Link, invitation.ExpiresAt);
                    await mails.EnqueueAsync(c, tx, new OutgoingMail($"invitation:{Guid.CreateVersion7(now)}", tenant.Id, MailTemplates.Invitation, email!, subject, text), now);
                    await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, tenant.Id, "tenant.user.invited", new JsonObject { ["email"] = email, ["role"] = role, ["delivery"] = MailDelivery }, now));
                    return new InvitedUserResponse(tenant.Id, email!, role, "invited", null, MailDelivery, invitation.ExpiresAt);
                },
                http.RequestAborted);
            return invited is null
                ? ApiError.Conflict("user-exists", "The user already exists.", $"{email} already has a password in tenant '{tenant.Slug}'.").ToResult()
                : TypedResults.Created($"/v1/tenants/{tenant.Id}/users", invited);
        }

        var (result, user, password) = await users.InviteAsync(tenant, email!, role, http.RequestAborted);
        if (result == TenantUserStore.InviteResult.AlreadyActive)
        {
            return ApiError.Conflict("user-exists", "The user already exists.", $"{email} already has a password in tenant '{tenant.Slug}'.").ToResult();
        }

        await AuditAsync(db, time, http, tenant.Id, "tenant.user.invited", new JsonObject { ["email"] = email, ["role"] = role, ["delivery"] = PasswordDelivery }, http.RequestAborted);
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
