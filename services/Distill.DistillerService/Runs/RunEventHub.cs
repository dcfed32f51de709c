using System.Collections.Concurrent;
using System.Threading.Channels;
using Distill.Protos.Distiller.V1;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Live events per run for the watchers connected now; history comes from the
/// <see cref="RunStore"/>. Only <see cref="RunEventRecorder"/> publishes, in sequence order.
/// </summary>
/// <param name="liveCapacity">Live events a watcher's queue holds before it drops the oldest.</param>
public sealed class RunEventHub(int liveCapacity = RunEventHub.DefaultLiveCapacity)
{
    public const int DefaultLiveCapacity = 10_000;

    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Channel<RunEvent>, byte>> _watchers = new();

    public IDisposable Subscribe(string runId, out ChannelReader<RunEvent> reader)
    {
        // A watcher that falls far behind loses the oldest live events; it sees the jump in
        // sequence numbers and reads the gap from the store.
        var channel = Channel.CreateBounded<RunEvent>(new BoundedChannelOptions(liveCapacity) { FullMode = BoundedChannelFullMode.DropOldest });
        var set = _watchers.GetOrAdd(runId, _ => new());
        set[channel] = 0;
        reader = channel.Reader;
        return new Subscription(() => set.TryRemove(channel, out _));
    }

    public void Publish(string runId, RunEvent runEvent)
    {
        if (!_watchers.TryGetValue(runId, out var set)) return;
        foreach (var channel in set.Keys) channel.Writer.TryWrite(runEvent);
    }

    /// <summary>Ends every watcher's live stream (the run was deleted).</summary>
    public void Complete(string runId)
    {
        if (!_watchers.TryRemove(runId, out var set)) return;
        foreach (var channel in set.Keys) channel.Writer.TryComplete();
    }

    private sealed class Subscription(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}
