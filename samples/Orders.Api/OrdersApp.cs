using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Tenantry.AspNetCore;
using Tenantry.Data;

namespace Orders.Api;

/// <summary>Builds the app; the Tenantry host runs the shared instance in-process, silo tenants get it as a process of their own.</summary>
public static class OrdersApp
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        configure?.Invoke(builder);
        builder.Services.AddTenantryApp();
        builder.Services.AddTenantryData();
        builder.Services.AddTenantryInstanceData();
        builder.Services.AddSingleton<OrdersData>();
        builder.Services.AddExceptionHandler<TenantDataUnavailableHandler>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver()));

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseTenantResolution();
        app.MapOrdersApi();
        return app;
    }
}

/// <summary>A tenant without a reachable database gets a 503 problem (retry shortly), not a 500.</summary>
internal sealed class TenantDataUnavailableHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not TenantDataUnavailableException)
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
                Type = "https://tenantry.dev/problems/tenant-data-unavailable",
                Title = "The tenant's data is not available.",
                Detail = "The tenant's database is not ready yet, the tenant is not active, or its data no longer exists.",
            },
        });
    }
}
