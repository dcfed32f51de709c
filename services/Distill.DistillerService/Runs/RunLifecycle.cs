using System.Collections.Concurrent;
using Distill.Core.Errors;
using Distill.Protos.Distiller.V1;

namespace Distill.DistillerService.Runs;

/// <summary>
/// A run's state machine. Every change goes through one table of allowed transitions and is
/// applied under the run's lock together with its store write and its StateChanged event;
/// a transition the table does not allow is refused and nothing changes. While a run
/// computes, its record lives here and progress is written to the store every few steps.
/// </summary>
public sealed class RunLifecycle(RunStore store, RunEventRecorder recorder)
{
    private static readonly Dictionary<RunState, RunState[]> Allowed = new()
    {
        [RunState.Queued] = [RunState.Running, RunState.Cancelled],
        // QUEUED again from RUNNING or PAUSED: picked up after the process stopped mid-run.
        [RunState.Running] = [RunState.Paused, RunState.Succeeded, RunState.Failed, RunState.Cancelled, RunState.Queued],
        // SUCCEEDED from PAUSED: the last step went through while the probe was still waiting.
        [RunState.Paused] = [RunState.Running, RunState.Cancelled, RunState.Failed, RunState.Queued, RunState.Succeeded],
        // Resume.
        [RunState.Succeeded] = [RunState.Queued],
        [RunState.Failed] = [RunState.Queued],
        [RunState.Cancelled] = [RunState.Queued],
    };

    private readonly ConcurrentDictionary<string, Run> _live = new();

    public static bool IsTerminal(RunState state) => state is RunState.Succeeded or RunState.Failed or RunState.Cancelled;

    public static bool IsAllowed(RunState from, RunState to) => Allowed.TryGetValue(from, out var next) && next.Contains(to);

    /// <summary>Runs <paramref name="action"/> under the run's lock, so that checks and changes are one step.</summary>
    public T Locked<T>(string id, Func<T> action)
    {
        lock (recorder.LockFor(id)) return action();
    }

    /// <summary>A copy of the run as it is now.</summary>
    public Run Get(string id)
    {
        lock (recorder.LockFor(id)) return Current(id).Clone();
    }

    public Run? Find(string id)
    {
        lock (recorder.LockFor(id)) return _live.TryGetValue(id, out var live) ? live.Clone() : store.Get(id);
    }

    /// <summary>Stores a new QUEUED run with its first event.</summary>
    public Run Create(Run run)
    {
        var id = RunNames.Id(run.Name);
        lock (recorder.LockFor(id))
        {
            run.State = RunState.Queued;
            store.Save(run);
            recorder.Record(id, StateEvent(run.State, run.StateMessage));
            return run.Clone();
        }
    }

    /// <summary>The transition, or a <see cref="StateConflictException"/> when the table does not allow it.</summary>
    public Run Move(string id, RunState to, string message, Action<Run>? change = null) =>
        TryMove(id, to, message, change) ?? throw Conflict(Get(id), $"cannot become {to}");

    /// <summary>The transition when the run is in one of <paramref name="from"/> (any state when null) and the table allows it; else null.</summary>
    public Run? TryMove(string id, RunState to, string message, Action<Run>? change = null, RunState[]? from = null)
    {
        lock (recorder.LockFor(id))
        {
            var run = Current(id);
            if (!IsAllowed(run.State, to) || (from is not null && !from.Contains(run.State))) return null;
            run.State = to;
            run.StateMessage = message;
            if (to != RunState.Running) run.StepsPerSecond = 0;
            change?.Invoke(run);
            store.Save(run);
            if (to is RunState.Running or RunState.Paused) _live[id] = run;
            else _live.TryRemove(id, out _);
            recorder.Record(id, StateEvent(to, message));
            return run.Clone();
        }
    }

    /// <summary>
    /// An end the store could not take (its disk is full): the live record shows it and the
    /// watchers get its event, numbered after the last stored one; nothing is written.
    /// </summary>
    public void EndUnstored(string id, RunState state, string message)
    {
        lock (recorder.LockFor(id))
        {
            var run = Current(id);
            run.State = state;
            run.StateMessage = message;
            run.StepsPerSecond = 0;
            _live[id] = run;
            recorder.PublishUnstored(id, StateEvent(state, message));
        }
    }

    /// <summary>Progress of a computing run, with its event; written to the store when <paramref name="persist"/>.</summary>
    public void Update(string id, Action<Run> change, RunEvent? runEvent, bool persist)
    {
        lock (recorder.LockFor(id))
        {
            var run = Current(id);
            change(run);
            if (persist) store.Save(run);
            if (IsTerminal(run.State) || run.State == RunState.Queued) _live.TryRemove(id, out _);
            else _live[id] = run;
            if (runEvent is not null) recorder.Record(id, runEvent);
        }
    }

    /// <summary>Writes what only the live record holds (a run interrupted by shutdown).</summary>
    public void Persist(string id)
    {
        lock (recorder.LockFor(id))
            if (_live.TryRemove(id, out var run)) store.Save(run);
    }

    /// <summary>True when <paramref name="sequence"/> is the run's latest event and the run is in <paramref name="state"/> now.</summary>
    public bool IsLatest(string id, long sequence, RunState state)
    {
        lock (recorder.LockFor(id))
        {
            var run = _live.TryGetValue(id, out var live) ? live : store.Get(id);
            // At or past the stored end: an end the store could not take (EndUnstored) is numbered past it.
            return run is not null && run.State == state && store.LastSequence(id) <= sequence;
        }
    }

    /// <summary>Deletes an ended run's record and events, under its lock; <paramref name="files"/> removes its files.</summary>
    public void Delete(string id, Action files)
    {
        lock (recorder.LockFor(id))
        {
            var run = Current(id);
            if (!IsTerminal(run.State)) throw Conflict(run, "only an ended run can be deleted; cancel it first");
            store.Delete(id);
            files();
            recorder.Forget(id);
        }
    }

    public static StateConflictException Conflict(Run run, string problem) =>
        new(ErrorReasons.RunStateConflict, run.Name, $"{run.Name} is {Display(run.State)}: {problem}");

    public static string Display(RunState state) => state.ToString().ToUpperInvariant();

    private Run Current(string id) =>
        _live.TryGetValue(id, out var live) ? live : store.Get(id) ?? throw RunNames.RunNotFound(id);

    private static RunEvent StateEvent(RunState state, string message) => new() { State = new StateChanged { State = state, Message = message } };
}
