using System.Globalization;

namespace Tenantry.Benchmarks;

/// <summary>
/// Whole-machine CPU use from /proc/stat (Linux; elsewhere none), so a run can show how much CPU
/// processes other than the host and the benchmark took while it ran, and how much of it the
/// hypervisor gave to someone else (steal).
/// </summary>
internal readonly record struct MachineCpu(long Busy, long Total, long Steal)
{
    public static MachineCpu? Read()
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/stat"))
            {
                return null;
            }

            // "cpu  user nice system idle iowait irq softirq steal guest guest_nice", in clock ticks.
            var first = File.ReadLines("/proc/stat").First();
            var fields = first.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
                .Take(8).Select(f => long.Parse(f, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
            if (fields.Length < 5)
            {
                return null;
            }

            var total = fields.Sum();
            var idle = fields[3] + fields[4];
            return new MachineCpu(total - idle, total, fields.Length > 7 ? fields[7] : 0);
        }
        catch (IOException)
        {
            return null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>Cores busy on average between <paramref name="before"/> and <paramref name="after"/>.</summary>
    public static double BusyCores(MachineCpu? before, MachineCpu? after)
    {
        if (before is not { } b || after is not { } a || a.Total <= b.Total)
        {
            return double.NaN;
        }

        return (double)(a.Busy - b.Busy) / (a.Total - b.Total) * Environment.ProcessorCount;
    }

    /// <summary>The share of the machine's CPU time between <paramref name="before"/> and <paramref name="after"/> that was stolen by the hypervisor.</summary>
    public static double StealShare(MachineCpu? before, MachineCpu? after) =>
        before is { } b && after is { } a && a.Total > b.Total ? (double)(a.Steal - b.Steal) / (a.Total - b.Total) : double.NaN;
}
