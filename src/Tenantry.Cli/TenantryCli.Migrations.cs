using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary><c>tenantry migrations</c>: fleet migrations of the tenant schema and the apps' current releases.</summary>
internal static partial class TenantryCli
{
    private static Command MigrationsCommand()
    {
        var migrations = new Command("migrations", "Fleet migrations: the tenant schema and every app's current release applied to the pool and every tenant, in the background.");

        var watchRun = new Option<bool>("--watch", "-w") { Description = "follow the run until it ends; exit 7 if a tenant failed" };
        var run = new Command("run", "Start a fleet migration (one at a time: exit 5 while another runs).") { watchRun };
        run.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var accepted = await api.SendAsync(HttpMethod.Post, "/v1/migrations", null, null, ct);
            if (parse.GetValue(watchRun))
            {
                return await WatchMigrationAsync(ctx, api, accepted.Str("id"), ct);
            }

            if (ctx.IsJson)
            {
                ctx.Json(accepted);
            }
            else
            {
                ctx.Out.WriteLine($"Fleet migration {accepted.Str("id")} {accepted.Str("status")}. Follow it: tenantry migrations watch {accepted.Str("id")}");
            }

            return ExitCodes.Ok;
        }));
        migrations.Subcommands.Add(run);

        var id = new Argument<string>("id") { Description = "fleet migration id" };
        var watch = new Command("watch", "Follow a fleet migration until it ends (tenants done / total), then list the failed tenants; exit 7 if any failed.") { id };
        watch.SetAction((parse, ct) => Run(parse, true, (ctx, api) => WatchMigrationAsync(ctx, api, parse.GetValue(id)!, ct)));
        migrations.Subcommands.Add(watch);

        var limit = new Option<int>("--limit") { Description = "runs per page (1-200)", DefaultValueFactory = _ => 20 };
        var cursor = new Option<string?>("--cursor") { Description = "continue after a previous page" };
        var list = new Command("list", "Fleet migrations, newest first, with their progress.") { limit, cursor };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var page = await api.GetAsync("/v1/migrations" + Query(("limit", parse.GetValue(limit).ToString(CultureInfo.InvariantCulture)), ("cursor", parse.GetValue(cursor))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "STATUS", "DONE", "FAILED", "CREATED", "FINISHED", "BY"], page.GetProperty("items").EnumerateArray().Select(m => (IReadOnlyList<string>)
                [m.Str("id"), m.Str("status"), $"{m.GetProperty("progress").Str("done")}/{m.GetProperty("progress").Str("total")}", m.GetProperty("progress").Str("failed"),
                 Output.Time(m.Str("createdAt")), Output.Time(m.Str("finishedAt")), m.Str("actor")]));
            if (page.Str("nextCursor") is { Length: > 0 } next)
            {
                ctx.Err.WriteLine($"More runs: --cursor {next}");
            }

            return ExitCodes.Ok;
        }));
        migrations.Subcommands.Add(list);
        return migrations;
    }

    private static async Task<int> WatchMigrationAsync(Output ctx, ApiClient api, string id, CancellationToken ct)
    {
        JsonElement migration;
        var last = "";
        while (true)
        {
            migration = await api.GetAsync($"/v1/migrations/{Escape(id)}?wait=2&status=failed", ct);
            var progress = migration.GetProperty("progress");
            var line = $"{migration.Str("status")}: {progress.Str("done")}/{progress.Str("total")} targets, {progress.Str("failed")} failed";
            if (!ctx.IsJson && line != last)
            {
                ctx.Err.WriteLine(line);
                last = line;
            }

            if (migration.Str("status") is "succeeded" or "failed")
            {
                break;
            }
        }

        if (ctx.IsJson)
        {
            ctx.Json(migration);
        }
        else
        {
            var failed = migration.GetProperty("tenants").EnumerateArray().ToList();
            if (failed.Count > 0)
            {
                ctx.Table(["TENANT", "TARGET", "ERROR"], failed.Select(t => (IReadOnlyList<string>)[t.Str("slug") is { Length: > 0 } s ? s : "pool", t.Str("target"), t.Str("error")]));
            }

            ctx.Out.WriteLine($"Fleet migration {migration.Str("id")}: {migration.Str("status")} ({migration.GetProperty("progress").Str("succeeded")} succeeded, {migration.GetProperty("progress").Str("failed")} failed, {migration.GetProperty("progress").Str("skipped")} skipped)");
        }

        return migration.Str("status") == "succeeded" ? ExitCodes.Ok : ExitCodes.OperationFailed;
    }
}
