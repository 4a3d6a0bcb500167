using Tenantry.Health;

namespace Tenantry.Gateway.Tests;

/// <summary>The latency sketch: quantiles within its documented relative error, exact merges, a stored form that reads back and refuses garbage.</summary>
public sealed class LatencySketchTests
{
    private static readonly double[] Quantiles = [0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1];

    [Fact]
    public void Quantiles_are_within_the_documented_relative_error_of_the_exact_ones()
    {
        var random = new Random(20261202);
        // Latencies as a gateway sees them: a log-normal body from ~0.1 ms with a long tail to seconds.
        var values = Enumerable.Range(0, 50_000).Select(_ => Math.Exp(random.NextDouble() * random.NextDouble() * 12 - 2)).ToArray();
        var sketch = new LatencySketch();
        foreach (var v in values)
        {
            sketch.Add(v);
        }

        Array.Sort(values);
        Assert.Equal(values.Length, sketch.Count);
        foreach (var q in Quantiles)
        {
            var exact = values[(int)Math.Floor(q * (values.Length - 1))];
            var estimate = sketch.Quantile(q)!.Value;
            Assert.True(Math.Abs(estimate - exact) <= LatencySketch.RelativeAccuracy * exact,
                $"q={q}: sketch {estimate} against exact {exact} ({Math.Abs(estimate - exact) / exact:P2} off; at most {LatencySketch.RelativeAccuracy:P0})");
        }
    }

    [Fact]
    public void Every_bucket_stands_for_its_latencies_within_the_relative_error()
    {
        for (var ms = 0.001; ms < LatencySketch.MaxMs; ms *= 1.003)
        {
            var value = LatencySketch.ValueOf(LatencySketch.IndexOf(ms));
            Assert.True(Math.Abs(value - ms) <= LatencySketch.RelativeAccuracy * ms * (1 + 1e-9), $"{ms} ms reads as {value} ms");
        }
    }

    [Fact]
    public void Merging_two_replicas_sketches_is_the_sketch_of_all_their_latencies()
    {
        var random = new Random(7);
        var (a, b, all) = (new LatencySketch(), new LatencySketch(), new LatencySketch());
        for (var i = 0; i < 10_000; i++)
        {
            var v = Math.Exp(random.NextDouble() * 10 - 3);
            (i % 3 == 0 ? a : b).Add(v);
            all.Add(v);
        }

        a.Merge(b);
        Assert.Equal(all.Buckets(), a.Buckets());
        Assert.Equal(all.ToBytes(), a.ToBytes());
        foreach (var q in Quantiles)
        {
            Assert.Equal(all.Quantile(q), a.Quantile(q));
        }
    }

    [Fact]
    public void The_stored_form_reads_back_and_anything_else_is_refused()
    {
        var sketch = new LatencySketch();
        foreach (var v in new[] { 0.0, 0.0004, 1, 1, 2.5, 80, 1e9, double.NaN })
        {
            sketch.Add(v);
        }

        var bytes = sketch.ToBytes();
        var back = LatencySketch.FromBytes(bytes);
        Assert.Equal(sketch.Buckets(), back.Buckets());
        Assert.Equal(8, back.Count);
        Assert.Equal(LatencySketch.MaxIndex, back.Buckets().Last().Index);
        Assert.True(new LatencySketch().ToBytes().Length <= 2);

        byte[][] garbage =
        [
            [],
            [2, 0],                           // another version
            [1, 1],                           // ends inside a bucket
            [1, 1, 0, 0],                     // an empty bucket
            [1, 2, 5, 1, 0, 1],               // a bucket twice (not increasing)
            [1, 1, 0x80, 0x10, 1],            // beyond the last bucket
            [.. bytes, 0],                    // bytes after the last bucket
            [1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], // more buckets than there are
        ];
        foreach (var g in garbage)
        {
            Assert.False(LatencySketch.TryRead(g, out _, out var error), $"[{string.Join(',', g)}] was read");
            Assert.False(string.IsNullOrEmpty(error));
        }
    }
}
