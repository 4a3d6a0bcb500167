using System.CommandLine;
using System.Globalization;

namespace Tenantry.Cli;

/// <summary><c>tenantry jobs</c>: a tenant's work queue, seen by an operator.</summary>
internal static partial class TenantryCli
{
    private static Command JobsCommand()
    {
        var jobs = new Command("jobs", "Tenant work queues: a tenant's jobs (its dead-letter queue with --status dead) and one job.");

        var tenant = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var status = new Option<string?>("--status") { Description = "queued, leased, succeeded or dead (the dead-letter queue)" };
        var limit = new Option<int>("--limit") { Description = "jobs (1-200), newest first", DefaultValueFactory = _ => 50 };
        var list = new Command("list", "A tenant's jobs, newest first.") { tenant, status, limit };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var owner = await api.GetAsync("/v1/tenants/" + Escape(parse.GetValue(tenant)!), ct);
            var page = await api.GetAsync(
                "/v1/jobs" + Query(("tenantId", owner.Str("id")), ("status", parse.GetValue(status)), ("limit", parse.GetValue(limit).ToString(CultureInfo.InvariantCulture))),
                ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "TYPE", "STATUS", "ATTEMPTS", "RUN AT", "LAST ERROR"], page.GetProperty("items").EnumerateArray().Select(j => (IReadOnlyList<string>)
                [j.Str("id"), j.Str("type"), j.Str("status"), $"{j.Str("attempts")}/{j.Str("maxAttempts")}", j.Str("runAt"), j.Str("lastError")]));
            return ExitCodes.Ok;
        }));
        jobs.Subcommands.Add(list);

        var id = new Argument<string>("id") { Description = "job id" };
        var get = ShowCommand("get", "One job: its payload, attempts, lease and last error.", id, "/v1/jobs");
        jobs.Subcommands.Add(get);
        return jobs;
    }
}
