using System.Text.Json;

namespace Tenantry.Cli;

/// <summary>Follows an operation with <c>?wait=</c> long-polls: a progress bar on a terminal, a line per change otherwise.</summary>
internal static class Watch
{
    private const int BarWidth = 24;

    public static async Task<int> RunAsync(Output ctx, ApiClient api, string operationId, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(operationId))
        {
            throw new CliException(ExitCodes.Failure, "The server answered without an operation id.");
        }

        var interactive = !ctx.IsJson && !Console.IsOutputRedirected && ReferenceEquals(ctx.Out, Console.Out);
        var last = "";
        var deadline = DateTime.UtcNow.AddHours(1);
        JsonElement op;
        while (true)
        {
            op = await api.GetAsync($"/v1/operations/{Uri.EscapeDataString(operationId)}?wait=10", cancellationToken);
            var status = op.Str("status");
            var steps = op.GetProperty("steps").EnumerateArray().ToList();
            var done = steps.Count(s => s.Str("status") == "succeeded");
            var current = steps.FirstOrDefault(s => s.Str("status") is not "succeeded").Str("name");
            var line = $"{op.Str("kind")} {Bar(done, steps.Count)} {done}/{steps.Count} {(status is "succeeded" ? "done" : current)} [{status}]";
            if (!ctx.IsJson && line != last)
            {
                if (interactive)
                {
                    ctx.Out.Write("\r" + line.PadRight(Math.Max(last.Length, line.Length)));
                }
                else
                {
                    ctx.Out.WriteLine(line);
                }

                last = line;
            }

            if (status is "succeeded" or "failed" || DateTime.UtcNow > deadline)
            {
                break;
            }
        }

        if (interactive)
        {
            ctx.Out.WriteLine();
        }

        if (ctx.IsJson)
        {
            ctx.Json(op);
        }

        if (op.Str("status") == "failed")
        {
            var failed = op.GetProperty("steps").EnumerateArray().FirstOrDefault(s => s.Str("status") == "failed");
            var next = op.Str("kind") switch
            {
                "change-tier" => "The tenant stays where it was; fix the cause, then start it again: tenantry tenants change-tier",
                "move" => "The tenant stays in its cell; fix the cause, then start it again: tenantry tenants move",
                _ => $"Fix the cause, then: tenantry operations retry {op.Str("id")}",
            };
            await ctx.Err.WriteLineAsync($"error: {op.Str("kind")} failed at step {failed.Str("name")}: {op.Str("error")}. {next}");
            return ExitCodes.OperationFailed;
        }

        return op.Str("status") == "succeeded" ? ExitCodes.Ok : ExitCodes.Failure;
    }

    private static string Bar(int done, int total)
    {
        var filled = total == 0 ? 0 : done * BarWidth / total;
        return "[" + new string('#', filled) + new string('-', BarWidth - filled) + "]";
    }
}
