using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Google.Protobuf.WellKnownTypes;

namespace Distill.DistillerService.Tests;

/// <summary>The store's contract, the same on SQLite and on PostgreSQL.</summary>
public class RunStoreTests
{
    private static RunStore Open(StoreDatabase database) => new(Microsoft.Extensions.Options.Options.Create(database.Options), TimeProvider.System);

    private static Run NewRun(string id, int minutesAgo) => new()
    {
        Name = "runs/" + id, Spec = LoopbackCluster.Spec(), State = RunState.Queued,
        CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow.AddMinutes(-minutesAgo)),
    };

    [SkippableTheory]
    [MemberData(nameof(StoreDatabase.Kinds), MemberType = typeof(StoreDatabase))]
    public void Runs_SaveUpdateListDelete_SurviveAReopen(string kind)
    {
        using var database = new StoreDatabase(kind);
        using (var store = Open(database))
        {
            store.Save(NewRun("run-b", minutesAgo: 1));
            store.Save(NewRun("run-a", minutesAgo: 2));
            var updated = store.Get("run-b")!;
            updated.State = RunState.Running;
            updated.Step = 42;
            store.Save(updated);
            store.Append("run-b", new RunEvent { Progress = new StepProgress { Step = 1 } });
        }

        // What the next process sees.
        using var reopened = Open(database);
        Assert.Equal(["run-a", "run-b"], reopened.List().Select(r => r.Name[5..]));
        var run = reopened.Get("run-b")!;
        Assert.Equal((RunState.Running, 42L), (run.State, run.Step));
        Assert.Equal(LoopbackCluster.Spec(), run.Spec);
        Assert.NotNull(run.UpdateTime);
        Assert.Null(reopened.Get("run-x"));

        reopened.Delete("run-b");
        Assert.Equal(["run-a"], reopened.List().Select(r => r.Name[5..]));
        Assert.Empty(reopened.Events("run-b", 0));
    }

    [SkippableTheory]
    [MemberData(nameof(StoreDatabase.Kinds), MemberType = typeof(StoreDatabase))]
    public async Task Events_NumberedPerRun_WithoutGapsUnderConcurrentAppends(string kind)
    {
        using var database = new StoreDatabase(kind);
        using var store = Open(database);
        // Four writers over two runs, as the supervisor's run loops and state changes append.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(writer => Task.Run(() =>
        {
            for (int i = 0; i < 25; i++)
                store.Append(writer % 2 == 0 ? "run-a" : "run-b", new RunEvent { Progress = new StepProgress { Step = writer * 100 + i } });
        })));

        foreach (var run in new[] { "run-a", "run-b" })
        {
            var events = store.Events(run, 0);
            Assert.Equal(Enumerable.Range(1, 50).Select(i => (long)i), events.Select(e => e.Sequence));
            Assert.All(events, e => Assert.NotNull(e.Time));
            // Each writer's own events keep their order.
            foreach (var group in events.GroupBy(e => e.Progress.Step / 100))
                Assert.Equal(group.Select(e => e.Progress.Step).Order(), group.Select(e => e.Progress.Step));
            Assert.Equal(events.Skip(40).Select(e => e.Sequence), store.Events(run, 40).Select(e => e.Sequence));
            // A page: the next events after a sequence, no more than asked for.
            Assert.Equal([21L, 22L, 23L], store.Events(run, 20, limit: 3).Select(e => e.Sequence));
        }
    }
}
