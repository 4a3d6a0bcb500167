using System.Data.Common;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Tenantry.Data;

namespace Tenantry.AspNetCore;

/// <summary>
/// A write refused because a tier change froze the tenant's data answers as the gateway answers it during the
/// freeze: <b>503</b> <c>tenant-frozen</c> with <c>Retry-After: 1</c>, not a 500. It reaches the app in the moment
/// between the freeze and the gateway's next reload of its routing table. Used by apps that call
/// <c>app.UseExceptionHandler()</c> (the sample and the app template do).
/// </summary>
internal sealed class TenantFrozenHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (!IsFrozen(exception))
        {
            return false;
        }

        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = "1";
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Type = "https://tenantry.dev/problems/tenant-frozen",
                Title = "The tenant's data is moving.",
                Detail = "A tier change is moving the tenant's data; writes are refused for about a second. Retry after the Retry-After delay.",
            },
        });
    }

    /// <summary>True when <paramref name="exception"/> (or one it wraps) is the database refusing a write of a frozen tenant.</summary>
    internal static bool IsFrozen(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is DbException && e.Message.Contains(TenantDataFrozen.Message, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
