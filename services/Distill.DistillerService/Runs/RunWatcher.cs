using System.Runtime.CompilerServices;
using Distill.Protos.Distiller.V1;

namespace Distill.DistillerService.Runs;

/// <summary>
/// A run's events for one watcher: history after a sequence number, then live events,
/// with no gap and no duplicate. It subscribes before it reads the history, skips live
/// events already sent, and reads from the store any it missed (a jump in sequence).
/// Without follow it ends after a terminal StateChanged that is the run's latest event
/// while the run is in that state; with follow it ends when the run is deleted or the
/// watcher leaves. A deletion may cut a watch short, never leave a gap in it.
/// </summary>
public sealed class RunWatcher(RunLifecycle lifecycle, RunStore store, RunEventHub hub)
{
    public async IAsyncEnumerable<RunEvent> WatchAsync(string id, long afterSequence, bool follow,
        [EnumeratorCancellation] CancellationToken cancellation)
    {
        lifecycle.Get(id);  // NOT_FOUND before anything is sent
        using var subscription = hub.Subscribe(id, out var live);
        if (lifecycle.Find(id) is null) yield break;  // deleted before the subscription counted
        var last = afterSequence;
        foreach (var past in Stored(id, last))
        {
            yield return past;
            last = past.Sequence;
            if (Ends(id, past, follow)) yield break;
        }
        if (!follow && lifecycle.Find(id) is { } run && RunLifecycle.IsTerminal(run.State) && store.LastSequence(id) <= last) yield break;

        await foreach (var next in live.ReadAllAsync(cancellation))
        {
            if (next.Sequence <= last) continue;
            if (next.Sequence > last + 1)
            {
                // Dropped from a full live queue: the store has them.
                foreach (var missed in Stored(id, last).TakeWhile(e => e.Sequence < next.Sequence))
                {
                    yield return missed;
                    last = missed.Sequence;
                    if (Ends(id, missed, follow)) yield break;
                }
                // Not in the store either: the run was deleted meanwhile (between the subscription
                // and the history, or while its events waited unread), and its deletion ends the watch.
                if (next.Sequence > last + 1) yield break;
            }
            yield return next;
            last = next.Sequence;
            if (Ends(id, next, follow)) yield break;
        }
    }

    // A long run's history is read a page at a time: a watch holds one page, not every step.
    private const int EventPage = 1000;

    private IEnumerable<RunEvent> Stored(string id, long afterSequence)
    {
        while (true)
        {
            var page = store.Events(id, afterSequence, EventPage);
            foreach (var e in page)
            {
                yield return e;
                afterSequence = e.Sequence;
            }
            if (page.Count < EventPage) yield break;
        }
    }

    private bool Ends(string id, RunEvent e, bool follow) =>
        !follow && e.EventCase == RunEvent.EventOneofCase.State && RunLifecycle.IsTerminal(e.State.State)
        && lifecycle.IsLatest(id, e.Sequence, e.State.State);
}
