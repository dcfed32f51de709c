using System.Collections.Concurrent;
using Distill.Protos.Distiller.V1;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Records a run's events: the store assigns the next sequence number and the live
/// watchers get the event, both under the run's own lock, so live events leave in
/// sequence order whatever threads record them. <see cref="RunLifecycle"/> takes the same
/// lock for a state change, its store write and its event together.
/// </summary>
public sealed class RunEventRecorder(RunStore store, RunEventHub hub)
{
    private readonly ConcurrentDictionary<string, object> _locks = new();

    /// <summary>The run's lock (a monitor: the lifecycle re-enters it to record an event).</summary>
    public object LockFor(string runId) => _locks.GetOrAdd(runId, _ => new object());

    public RunEvent Record(string runId, RunEvent runEvent)
    {
        lock (LockFor(runId))
        {
            var stored = store.Append(runId, runEvent);
            hub.Publish(runId, stored);
            return stored;
        }
    }

    /// <summary>An event the store cannot take (disk full), for the live watchers only.</summary>
    public void PublishUnstored(string runId, RunEvent runEvent)
    {
        lock (LockFor(runId))
        {
            runEvent.Sequence = store.LastSequence(runId) + 1;
            runEvent.Time ??= Google.Protobuf.WellKnownTypes.Timestamp.FromDateTime(DateTime.UtcNow);
            hub.Publish(runId, runEvent);
        }
    }

    /// <summary>Forgets a deleted run's lock and ends its watchers.</summary>
    public void Forget(string runId)
    {
        hub.Complete(runId);
        _locks.TryRemove(runId, out _);
    }
}
