using System.CommandLine;
using Tenantry.Cli;

return await TenantryCli.RunAsync(args, Console.Out, Console.Error);
