using System.Globalization;

namespace Tenantry.Gateway.Benchmarks;

/// <summary>The machine's CPU time from <c>/proc/stat</c>: how much of it the hypervisor gave to someone else (steal).</summary>
internal readonly record struct MachineCpu(long Total, long Steal)
{
    public static MachineCpu Read()
    {
        // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ticks = fields.Skip(1).Take(8).Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        return new MachineCpu(ticks.Sum(), ticks[7]);
    }

    public double StealShareSince(MachineCpu before) =>
        Total == before.Total ? 0 : (double)(Steal - before.Steal) / (Total - before.Total);
}
