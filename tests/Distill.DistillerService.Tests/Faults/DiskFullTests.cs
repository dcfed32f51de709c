using Distill.Core.Checkpoints;
using Distill.Core.Distillation;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Grpc.Net.Client;
using Microsoft.Data.Sqlite;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests.Faults;

/// <summary>
/// The disk under the distiller's data folder fills up during a run: the run stops FAILED naming
/// the cause, its last good checkpoint stays loadable and nothing half written takes its place;
/// once space is freed a resume completes the run as if nothing happened.
/// </summary>
public sealed class DiskFullTests : IDisposable
{
    private readonly DirectoryInfo _mounts = Directory.CreateTempSubdirectory("distill-diskfull-");
    private readonly List<IDisposable> _cleanup = [];

    private static RunSpec Spec() => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 2, Steps = 80, TargetBatch = 500, LearningRate = 0.05, CheckpointEvery = 5, Seed = 31,
    };

    /// <summary>runs: only the runs' files on the small disk; all: the database too.</summary>
    public static TheoryData<string> Placements => ["runs", "all"];

    [SkippableTheory]
    [MemberData(nameof(Placements))]
    public async Task DiskFills_DuringARun_RunFailsSayingSoKeepsItsLastGoodCheckpointAndResumesOnceSpaceIsFree(string placement)
    {
        var dataFolder = Path.Combine(_mounts.FullName, "distiller");
        var disk = SmallFilesystem.Mount(placement == "all" ? dataFolder : Path.Combine(dataFolder, "runs"), megabytes: 4);
        _cleanup.Add(disk);
        var cluster = new ProcessCluster(dataFolder);
        _cleanup.Insert(0, cluster);
        await using var kernel = await cluster.StartKernelAsync(ServiceProcess.FreePort());
        string id;
        long failedAt;
        await using (var distiller = await cluster.StartDistillerAsync(kernel.Address))
        {
            using var channel = GrpcChannel.ForAddress(distiller.Address);
            var client = new DistillerClient(channel);
            id = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
            var before = await ProcessCluster.WatchUntilAsync(client, id, e => e.Checkpoint?.Step >= 10);
            disk.Fill();
            var events = await ProcessCluster.WatchToEndAsync(client, id, before[^1].Sequence);

            // With the database on the full disk the failing events may not be stored, and a
            // watch that starts after the run has failed replays none: the run itself says it.
            failedAt = events.Count > 0 ? events[^1].Sequence : before[^1].Sequence;
            if (events.Count > 0)
            {
                Assert.Equal(RunState.Failed, events[^1].State.State);
                Assert.StartsWith("no space left on device", events[^1].State.Message);
            }
            var shown = await client.GetRunAsync(new GetRunRequest { Name = id });
            Assert.Equal(RunState.Failed, shown.State);
            Assert.StartsWith("no space left on device", shown.StateMessage);
            Assert.True(shown.Step < Spec().Steps);
        }

        // What is on disk: whole checkpoints under both names, no temporary file, a sound database.
        var runFolder = cluster.RunFolder(id);
        using (var latest = CheckpointFiles.LoadNewestGood(runFolder, (file, reason) => Assert.Fail($"{file}: {reason}")))
            Assert.True(latest!.Step >= 10);
        Assert.Empty(Directory.GetFiles(runFolder, ".*.tmp", SearchOption.AllDirectories));
        Assert.Equal("ok", QuickCheck(Path.Combine(dataFolder, RunStore.DatabaseFile)));

        disk.Free();
        await using var restarted = await cluster.StartDistillerAsync(kernel.Address);
        using var restartedChannel = GrpcChannel.ForAddress(restarted.Address);
        var restartedClient = new DistillerClient(restartedChannel);
        // With the database on the full disk the failure may not have been stored: then the restart has picked the run up already.
        if ((await restartedClient.GetRunAsync(new GetRunRequest { Name = id })).State == RunState.Failed)
            await restartedClient.ResumeRunAsync(new ResumeRunRequest { Name = id });
        var resumed = await ProcessCluster.WatchUntilAsync(restartedClient, id, e => e.State?.State is RunState.Succeeded or RunState.Failed, failedAt);
        Assert.Equal(RunState.Succeeded, resumed[^1].State.State);

        var undisturbed = (await restartedClient.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
        Assert.Equal(RunState.Succeeded, (await ProcessCluster.WatchToEndAsync(restartedClient, undisturbed))[^1].State.State);
        Assert.Equal(cluster.Support(undisturbed, Spec().Steps), cluster.Support(id, Spec().Steps));
    }

    private static string QuickCheck(string file)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA quick_check";
        return (string)command.ExecuteScalar()!;
    }

    public void Dispose()
    {
        foreach (var item in _cleanup) item.Dispose();
        _mounts.Delete(recursive: true);
    }
}
