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
        builder.Services.AddSingleton<OrdersData>();
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
