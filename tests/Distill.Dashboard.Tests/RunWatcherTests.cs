using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Distill.Client;
using Distill.Dashboard.Services;
using Grpc.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace Distill.Dashboard.Tests;

public sealed class RunWatcherTests
{
    private static StepEvent Step(long sequence) => new(sequence, DateTimeOffset.UnixEpoch, sequence, 100, 1.0 / sequence, 10);

    [Fact]
    public async Task One_stream_per_run_fanned_out_and_resumed_after_the_last_sequence()
    {
        var opened = new List<long>();
        var live = Channel.CreateUnbounded<RunEventRecord>();
        var breaks = 0;
        async IAsyncEnumerable<RunEventRecord> Source(string id, long after, [EnumeratorCancellation] CancellationToken ct)
        {
            lock (opened) opened.Add(after);
            if (after == 0)
            {
                yield return Step(1);
                yield return Step(2);
                // The distiller restarts: the stream breaks after two events.
                Interlocked.Increment(ref breaks);
                throw new DistillerException(StatusCode.Unavailable, "restarting");
            }
            // The replay after a reconnect may repeat what was seen; the watcher drops it.
            yield return Step(2);
            await foreach (var e in live.Reader.ReadAllAsync(ct)) yield return e;
        }

        await using var watcher = new RunWatcher(Source, NullLogger<RunWatcher>.Instance);
        var first = new List<long>();
        var second = new List<long>();
        using var a = watcher.Subscribe("run-a", events => { lock (first) first.AddRange(events.Select(e => e.Sequence)); });
        using var b = watcher.Subscribe("runs/run-a", events => { lock (second) second.AddRange(events.Select(e => e.Sequence)); });
        Assert.Equal(1, watcher.OpenStreams);

        await live.Writer.WriteAsync(Step(3));
        await Eventually(() => { lock (first) lock (second) return first.Count == 3 && second.Count == 3; });
        Assert.Equal([1, 2, 3], first);
        Assert.Equal([1, 2, 3], second);
        lock (opened) Assert.Equal([0, 2], opened);

        // A late subscriber gets the history first.
        var late = new List<long>();
        using var c = watcher.Subscribe("run-a", events => { lock (late) late.AddRange(events.Select(e => e.Sequence)); });
        await Eventually(() => { lock (late) return late.Count == 3; });
        Assert.Equal(1, watcher.OpenStreams);
    }

    [Fact]
    public async Task A_deleted_run_ends_its_stream()
    {
        static async IAsyncEnumerable<RunEventRecord> Source(string id, long after, [EnumeratorCancellation] CancellationToken ct)
        {
            await Task.Yield();
            throw new DistillerException(StatusCode.NotFound, "no such run");
#pragma warning disable CS0162
            yield break;
#pragma warning restore CS0162
        }
        await using var watcher = new RunWatcher(Source, NullLogger<RunWatcher>.Instance);
        var subscription = watcher.Subscribe("run-gone", _ => { });
        subscription.Dispose();
        await Eventually(() => watcher.OpenStreams == 0);
    }

    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("condition not met within 10 s");
            await Task.Delay(20);
        }
    }
}
