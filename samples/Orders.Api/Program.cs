namespace Orders.Api;

public static class Program
{
    public static async Task Main(string[] args) => await OrdersApp.Build(args).RunAsync();
}
