using System.Collections.Concurrent;
using CsCheck;
using Distill.Protos.Distiller.V1;
using Grpc.Core;

namespace Distill.DistillerService.Tests;

/// <summary>
/// Random sequences of start, cancel, resume, delete, evaluate and host restarts over a few
/// tiny runs, several operations at once; then the lifecycle's invariants: every run ends
/// (none stuck QUEUED or RUNNING once the host is idle), every watcher saw each run's
/// events gapless and in order without duplicates, and the store says the same after a restart.
/// </summary>
[Trait("Category", "Lifecycle")]
public class LifecyclePropertyTests
{
    private enum Kind { Start, Cancel, Resume, Delete, Evaluate }

    private sealed record Operation(Kind Kind, int Run, int Steps)
    {
        public override string ToString() => $"{Kind}({Run},{Steps})";
    }

    /// <summary>A round is either a restart of the host (null) or a few operations run at once.</summary>
    private static readonly Gen<Operation[]?[]> Rounds =
        Gen.Frequency(
            (1, Gen.Const<Operation[]?>((Operation[]?)null)),
            (6, Gen.Select(Gen.Enum<Kind>(), Gen.Int[0, 2], Gen.Int[1, 4], (kind, run, steps) => new Operation(kind, run, steps))
                .Array[1, 3].Select(ops => (Operation[]?)ops)))
        .Array[3, 8];

    [Fact]
    public async Task Lifecycle_RandomConcurrentOperations_KeepItsInvariants()
    {
        await using var cluster = await LoopbackCluster.StartAsync(distillerSettings: new Dictionary<string, string?> { ["Distiller:MaxConcurrentRuns"] = "2" });
        await Rounds.SampleAsync(rounds => CheckAsync(cluster, rounds), iter: 20, threads: 1,
            print: rounds => string.Join(" | ", rounds.Select(r => r is null ? "restart" : string.Join(" & ", r.Select(o => o.ToString())))));
    }

    private static async Task CheckAsync(LoopbackCluster cluster, Operation[]?[] rounds)
    {
        var names = new string?[3];
        var watchers = new Watchers(cluster);
        foreach (var round in rounds)
        {
            if (round is null)
            {
                watchers.Note("restart");
                await cluster.StopDistillerAsync();
                await watchers.EndAsync();
                await cluster.StartDistillerAsync();
                watchers.Reconnect();
                continue;
            }
            // An operation alone on its run in the round can be judged by the state before and after it.
            await Task.WhenAll(round.Select(op => ApplyAsync(cluster, names, watchers, op, alone: round.Count(o => o.Run == op.Run) == 1)));
        }

        // Idle: every run that exists ends, and its history says so.
        var runs = (await cluster.Client.ListRunsAsync(new ListRunsRequest())).Runs;
        foreach (var run in runs)
        {
            var history = await cluster.WatchToEndAsync(run.Name, timeout: TimeSpan.FromMinutes(1));
            Assert.Equal(Enumerable.Range(1, history.Count).Select(i => (long)i), history.Select(e => e.Sequence));
            var end = history[^1];
            Assert.Equal(RunEvent.EventOneofCase.State, end.EventCase);
            var now = await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name });
            Assert.True(now.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled, $"{run.Name} is {now.State}");
            Assert.Equal(now.State, end.State.State);
            Assert.NotEqual(RunState.Failed, now.State);
            watchers.Expect(run.Name, history);
        }
        await watchers.EndAsync();
        watchers.AssertSawPrefixes();

        // The store agrees with what the host said.
        var before = (await cluster.Client.ListRunsAsync(new ListRunsRequest())).Runs.Select(r => (r.Name, r.State, r.Step)).ToList();
        await cluster.RestartDistillerAsync();
        var after = (await cluster.Client.ListRunsAsync(new ListRunsRequest())).Runs.Select(r => (r.Name, r.State, r.Step)).ToList();
        Assert.Equal(before, after);

        foreach (var run in runs) await cluster.Client.DeleteRunAsync(new DeleteRunRequest { Name = run.Name });
    }

    private static async Task ApplyAsync(LoopbackCluster cluster, string?[] names, Watchers watchers, Operation op, bool alone)
    {
        var client = cluster.Client;
        var name = names[op.Run];
        try
        {
            switch (op.Kind)
            {
                case Kind.Start:
                    var spec = LoopbackCluster.Spec(op.Steps);
                    spec.CheckpointEvery = 1;
                    spec.EvaluateEvery = 0;
                    var run = await client.StartRunAsync(new StartRunRequest { Spec = spec });
                    names[op.Run] = run.Name;
                    watchers.Note($"{run.Name}: started as run {op.Run}");
                    watchers.Watch(run.Name);
                    break;
                case Kind.Cancel when name is not null:
                    await client.CancelRunAsync(new CancelRunRequest { Name = name });
                    break;
                case Kind.Resume when name is not null:
                    await client.ResumeRunAsync(new ResumeRunRequest { Name = name, Steps = op.Steps + 2 });
                    break;
                case Kind.Delete when name is not null:
                    await client.DeleteRunAsync(new DeleteRunRequest { Name = name });
                    watchers.Deleted(name);
                    break;
                case Kind.Evaluate when name is not null:
                    var before = await client.GetRunAsync(new GetRunRequest { Name = name });
                    await client.EvaluateRunAsync(new EvaluateRunRequest { Name = name });
                    // An ended run stays as it was (a resume in the same round may move it on).
                    if (alone && before.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled)
                        Assert.Equal(before.State, (await client.GetRunAsync(new GetRunRequest { Name = name })).State);
                    break;
            }
            if (name is not null && op.Kind != Kind.Start) watchers.Note($"{name}: {op} done");
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.NotFound)
        {
            // Not allowed in the run's state now, or deleted meanwhile: refused, as it should be.
            watchers.Note($"{name}: {op} refused ({e.StatusCode})");
        }
    }

    /// <summary>A follow watcher per run, reconnecting after a restart from the last sequence it saw.</summary>
    private sealed class Watchers(LoopbackCluster cluster)
    {
        private readonly ConcurrentDictionary<string, List<long>> _seen = new();
        private readonly ConcurrentDictionary<string, List<RunEvent>> _expected = new();
        private readonly ConcurrentDictionary<string, byte> _deleted = new();
        private readonly List<(Task Task, CancellationTokenSource Stop)> _running = [];
        private readonly Lock _lock = new();
        private readonly SemaphoreSlim _arrived = new(0);
        // How each watch began and ended, in order: a failed assertion prints it.
        private readonly ConcurrentQueue<string> _log = new();
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

        public void Note(string what) => _log.Enqueue($"{_clock.Elapsed.TotalSeconds:F3}s {what}");

        public void Watch(string name)
        {
            var seen = _seen.GetOrAdd(name, _ => []);
            var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            long after;
            lock (seen) after = seen.Count == 0 ? 0 : seen[^1];
            var client = cluster.Client;
            Note($"{name}: watch after {after}");
            var task = Task.Run(async () =>
            {
                var ending = "stream ended";
                try
                {
                    using var call = client.WatchRun(new WatchRunRequest { Name = name, AfterSequence = after, Follow = true }, cancellationToken: stop.Token);
                    await foreach (var e in call.ResponseStream.ReadAllAsync(stop.Token))
                    {
                        lock (seen) seen.Add(e.Sequence);
                        _arrived.Release();
                    }
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.Cancelled or StatusCode.Unavailable or StatusCode.NotFound or StatusCode.Internal or StatusCode.Unknown)
                {
                    // The watcher left, the host stopped under it, or the run was deleted first.
                    ending = $"{e.StatusCode}: {e.Status.Detail}";
                }
                catch (OperationCanceledException)
                {
                    ending = "left";
                }
                lock (seen) Note($"{name}: watch after {after} ended ({ending}); seen {string.Join(",", seen)}");
            });
            lock (_lock) _running.Add((task, stop));
        }

        public void Deleted(string name)
        {
            _deleted[name] = 0;
            Note($"{name}: deleted");
        }

        public void Reconnect()
        {
            foreach (var name in _seen.Keys.Where(n => !_deleted.ContainsKey(n))) Watch(name);
        }

        public void Expect(string name, List<RunEvent> history) => _expected[name] = history;

        public async Task EndAsync()
        {
            List<(Task Task, CancellationTokenSource Stop)> running;
            lock (_lock)
            {
                running = [.. _running];
                _running.Clear();
            }
            // Give each follow watcher every event of the history it is expected to see.
            foreach (var (name, history) in _expected)
            {
                var seen = _seen.GetValueOrDefault(name);
                if (seen is null) continue;
                while (true)
                {
                    lock (seen) if (seen.Count > 0 && seen[^1] >= history[^1].Sequence) break;
                    // Woken by each event any watcher receives; a watcher that receives nothing for
                    // this long has lost events, which the assertions below report.
                    if (!await _arrived.WaitAsync(TimeSpan.FromSeconds(30))) break;
                }
            }
            foreach (var (_, stop) in running) await stop.CancelAsync();
            await Task.WhenAll(running.Select(r => r.Task));
            foreach (var (_, stop) in running) stop.Dispose();
        }

        public void AssertSawPrefixes()
        {
            foreach (var (name, seen) in _seen)
            {
                lock (seen)
                {
                    // Gapless from the first, increasing, no duplicates, across reconnects.
                    var expected = _expected.TryGetValue(name, out var history)
                        ? history.Select(e => e.Sequence).ToList()
                        : Enumerable.Range(1, seen.Count).Select(i => (long)i).ToList();
                    Assert.True(expected.SequenceEqual(seen),
                        $"{name} was seen as [{string.Join(",", seen)}], expected [{string.Join(",", expected)}]; the watches:\n{string.Join("\n", _log)}");
                }
            }
        }
    }
}
