using System.IO.Compression;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Output;
using Distill.Core.Preprocessing;
using Distill.Core.Runs;
using Distill.Core.Tests;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using SkiaSharp;
using RunPhase = Distill.Protos.Distiller.V1.RunPhase;

namespace Distill.DistillerService.Tests;

public class RunTests
{
    [Fact]
    public async Task StartRun_CompletesAndWatchReplaysHistoryThenEnds()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec() });
        var live = await cluster.WatchToEndAsync(run.Name);

        Assert.Equal(RunState.Succeeded, live[^1].State.State);
        Assert.Equal(Enumerable.Range(1, live.Count).Select(i => (long)i), live.Select(e => e.Sequence));
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), live.Where(e => e.Progress is not null).Select(e => e.Progress.Step));
        Assert.Contains(live, e => e.Checkpoint?.Step == 20);
        var losses = live.Where(e => e.Progress is not null).Select(e => e.Progress.Loss).ToList();
        Assert.True(losses.TakeLast(3).Average() < losses.Take(3).Average(), $"KIP through the services must lower the loss: {losses[0]:G4} -> {losses[^1]:G4}");
        var evaluations = live.Where(e => e.Evaluation is not null).Select(e => e.Evaluation).ToList();
        Assert.Equal([0L, 10L, 20L], evaluations.Select(e => e.Step));

        // A watcher arriving after the end gets the same history.
        var late = await cluster.WatchToEndAsync(run.Name);
        Assert.Equal(live.Select(e => e.Sequence), late.Select(e => e.Sequence));
        var stored = await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name });
        Assert.Equal(20, stored.Step);
        Assert.Equal(evaluations[^1].TestAccuracy, stored.TestAccuracy);
    }

    [Fact]
    public async Task Run_ShardedOverTwoKernelServices_EqualsOneServiceAndInProcess()
    {
        double[] Support(LoopbackCluster cluster, string id)
        {
            using var state = KipState.Load(Path.Combine(cluster.RunFolder(id), LocalRun.CheckpointFile));
            return TensorAssert.ToArray(state.SupportImages);
        }
        await using var one = await LoopbackCluster.StartAsync(kernelServices: 1);
        await using var two = await LoopbackCluster.StartAsync(kernelServices: 2);
        var a = await one.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(10) });
        var b = await two.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(10) });
        Assert.Equal(RunState.Succeeded, (await one.WatchToEndAsync(a.Name))[^1].State.State);
        Assert.Equal(RunState.Succeeded, (await two.WatchToEndAsync(b.Name))[^1].State.State);

        // The same run in this process with the engine alone.
        using var data = PreparedDataset.Prepare(DatasetLoader.Load(Path.Combine(one.DataRoot, TinyDataset.Name)), new PreprocessingSpec());
        var local = Directory.CreateTempSubdirectory("distill-local-");
        LocalRun.Execute(data, Runs.RunSpecs.ToOptions(LoopbackCluster.Spec(10)), local.FullName, resume: false);
        using var inProcess = KipState.Load(Path.Combine(local.FullName, LocalRun.CheckpointFile));
        local.Delete(recursive: true);

        // Shards change only the order of float64 additions.
        TensorAssert.Close(Support(one, a.Name), Support(two, b.Name), 1e-10, "one vs two kernel services");
        TensorAssert.Close(TensorAssert.ToArray(inProcess.SupportImages), Support(one, a.Name), 1e-10, "in process vs service");
    }

    [Fact]
    public async Task ExportRun_EachFormat_IsAReadableFile()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(5) });
        await cluster.WatchToEndAsync(run.Name);
        var directory = Directory.CreateTempSubdirectory("distill-export-");
        try
        {
            async Task<string> Export(ExportFormat format)
            {
                using var call = cluster.Client.ExportRun(new ExportRunRequest { Name = run.Name, Format = format });
                string? path = null;
                long total = 0;
                await using var output = new MemoryStream();
                await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                {
                    if (path is null) { path = Path.Combine(directory.FullName, chunk.FileName); total = chunk.TotalBytes; }
                    chunk.Data.WriteTo(output);
                }
                Assert.Equal(total, output.Length);
                await File.WriteAllBytesAsync(path!, output.ToArray());
                return path!;
            }

            var (tensors, metadata) = SafetensorsFile.Read(await Export(ExportFormat.Safetensors));
            Assert.Equal(new long[] { 10, 1, 8, 8 }, tensors["images_pixels"].Shape);
            Assert.Equal(TinyDataset.Name, metadata["distill.dataset"]);

            using (var zip = ZipFile.OpenRead(await Export(ExportFormat.Npz)))
            {
                Assert.Equal(["classes.npy", "images.npy", "images_pixels.npy", "labels.npy"], zip.Entries.Select(e => e.Name).Order());
                using var npy = new BinaryReader(zip.GetEntry("labels.npy")!.Open());
                Assert.Equal(0x93, npy.ReadByte());
                Assert.Equal("NUMPY", new string(npy.ReadChars(5)));
                npy.ReadBytes(2);
                var header = new string(npy.ReadChars(npy.ReadUInt16()));
                Assert.Contains("'shape': (10, 10)", header);
                Assert.Contains("'descr': '<f4'", header);
            }

            using var png = SKBitmap.Decode(await Export(ExportFormat.PngGrid));
            Assert.NotNull(png);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task CancelThenResume_ContinuesFromCheckpointToTheEnd_EvaluateUsesAnyKernel()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(400) });
        using (var watch = cluster.Client.WatchRun(new WatchRunRequest { Name = run.Name }))
        {
            await foreach (var e in watch.ResponseStream.ReadAllAsync())
                if (e.Checkpoint is not null) break;
        }
        await cluster.Client.CancelRunAsync(new CancelRunRequest { Name = run.Name });
        var events = await cluster.WatchToEndAsync(run.Name);
        Assert.Equal(RunState.Cancelled, events[^1].State.State);

        var nngpSpec = new Protos.Kernel.V1.KernelSpec { FullyConnected = new Protos.Kernel.V1.FullyConnectedSpec { Kind = Protos.Kernel.V1.KernelKind.Nngp } };
        var nngp = await cluster.Client.EvaluateRunAsync(new EvaluateRunRequest { Name = run.Name, Kernel = nngpSpec });
        Assert.True(nngp.Step >= 5);
        Assert.Equal(Protos.Kernel.V1.KernelKind.Nngp, nngp.Kernel.FullyConnected.Kind);
        Assert.True(nngp.Kernel.FullyConnected.HasDepth, "the kernel comes back with its defaults filled in");

        // The same evaluation in this process, with the engine alone, on the checkpoint's support set.
        using (var data = PreparedDataset.Prepare(DatasetLoader.Load(Path.Combine(cluster.DataRoot, TinyDataset.Name)), new PreprocessingSpec()))
        using (var state = KipState.Load(Path.Combine(cluster.RunFolder(run.Name), LocalRun.CheckpointFile)))
        {
            Assert.Equal(state.Step, nngp.Step);
            var kernel = new Core.Kernels.KernelSpec(Core.Kernels.KernelKind.Nngp).Create();
            var expected = Core.Evaluation.KrrEvaluator.Evaluate(kernel, state.SupportImages, state.SupportLabels, data.TestImages, data.TestLabels,
                data.TestTargets, state.Options.Regularization);
            // The service computes the same float64 arithmetic in another block order: accuracy is a
            // count and must match exactly, the MSE to round-off.
            Assert.Equal(expected.Accuracy, nngp.TestAccuracy);
            Assert.Equal(expected.Mse, nngp.TestMse, 1e-9);
        }

        await cluster.Client.ResumeRunAsync(new ResumeRunRequest { Name = run.Name, Steps = 30 });
        var resumed = await cluster.WatchToEndAsync(run.Name, afterSequence: events[^1].Sequence);
        Assert.Equal(RunState.Succeeded, resumed[^1].State.State);
        Assert.Contains(resumed, e => e.State?.Message.StartsWith("resumed from step", StringComparison.Ordinal) == true);
        Assert.Equal(30, (await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name })).Step);
    }

    [Fact]
    public async Task LabelSolve_OnTwoServices_ReportsBothPhasesAsTheyGo_AndEqualsTheEngineInThisProcess()
    {
        await using var cluster = await LoopbackCluster.StartAsync(kernelServices: 2);
        var run = await cluster.Client.StartRunAsync(new StartRunRequest
        {
            Spec = new RunSpec { Dataset = TinyDataset.Name, SupportPerClass = 2, Method = Method.LabelSolve, Seed = 7 },
        });
        var events = await cluster.WatchToEndAsync(run.Name);
        Assert.Equal(RunState.Succeeded, events[^1].State.State);

        // 300 train and 100 test images go out in one chunk per service. A Label Solve chunk of
        // 150 streams its blocks of 15 rows, an evaluation chunk of 50 its blocks of 10.
        var phases = events.Where(e => e.Phase is not null).Select(e => e.Phase).ToList();
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (15L * i, 300L)), phases.Where(p => p.Phase == RunPhase.LabelSolve).Select(p => (p.Done, p.Total)));
        Assert.Equal(Enumerable.Range(1, 10).Select(i => (10L * i, 100L)), phases.Where(p => p.Phase == RunPhase.Evaluation).Select(p => (p.Done, p.Total)));
        // The first chunk's support Gram, 20 x 21 / 2 image pairs, in the Label Solve (after its rows) and in the evaluation (before them).
        var gram = phases.Select((p, i) => (p, i)).Where(x => x.p.Phase == RunPhase.SupportGram).ToList();
        Assert.All(gram, x => Assert.Equal(210L, x.p.Total));
        var ends = gram.Where(x => x.p.Done == 210).Select(x => x.i).ToList();
        Assert.Equal(2, ends.Count);
        Assert.True(phases.FindIndex(p => p.Phase == RunPhase.LabelSolve) < ends[0] && ends[0] < phases.FindIndex(p => p.Phase == RunPhase.Evaluation),
            "the Label Solve's support Gram ends between its rows and the evaluation's");
        Assert.True(ends[1] < phases.FindIndex(p => p.Phase == RunPhase.Evaluation && p.Done == 100), "the evaluation's support Gram ends before its last rows");
        Assert.All(phases, p => Assert.True(p.Step == 0 && p.Elapsed is not null));
        var evaluation = Assert.Single(events, e => e.Evaluation is not null);
        Assert.True(events.IndexOf(events.Last(e => e.Phase is not null)) < events.IndexOf(evaluation));

        // The same Label Solve with the engine alone, in this process and in one pass.
        var stored = await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name });
        var folder = Directory.CreateTempSubdirectory("distill-ls-");
        try
        {
            using var data = PreparedDataset.Prepare(DatasetLoader.Load(Path.Combine(cluster.DataRoot, TinyDataset.Name)), new PreprocessingSpec());
            var local = LocalRun.Execute(data, RunSpecs.ToOptions(stored.Spec), folder.FullName, resume: false);
            Assert.Equal(local.TestAccuracy, evaluation.Evaluation.TestAccuracy);
            Assert.Equal(local.TestMse, evaluation.Evaluation.TestMse, 1e-9);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Run_Diverging_FailsWithMessageAndKeepsLastGoodCheckpoint()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var spec = LoopbackCluster.Spec(40);
        spec.LearningRate = 1e200;
        spec.CheckpointEvery = 1;
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = spec });
        var events = await cluster.WatchToEndAsync(run.Name);
        Assert.Equal(RunState.Failed, events[^1].State.State);
        Assert.Contains("non-finite", events[^1].State.Message);
        var stored = await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name });
        using var state = KipState.Load(Path.Combine(cluster.RunFolder(run.Name), LocalRun.CheckpointFile));
        Assert.True(TensorAssert.ToArray(state.SupportImages).All(double.IsFinite), "the kept checkpoint is a good one");
        Assert.Equal(stored.CheckpointStep, state.Step);
    }

    [Fact]
    public async Task StartRun_BadSpec_IsRefusedNamingTheField()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        async Task<RpcException> Refused(Action<RunSpec> change)
        {
            var spec = LoopbackCluster.Spec();
            change(spec);
            return await Assert.ThrowsAsync<RpcException>(() => cluster.Client.StartRunAsync(new StartRunRequest { Spec = spec }).ResponseAsync);
        }

        Assert.Contains("spec.support_per_class", (await Refused(s => s.SupportPerClass = 0)).Status.Detail);
        Assert.Contains("spec.learning_rate", (await Refused(s => s.LearningRate = -1)).Status.Detail);
        Assert.Contains("spec.kernel.fully_connected.depth", (await Refused(s => s.Kernel = new Protos.Kernel.V1.KernelSpec { FullyConnected = new Protos.Kernel.V1.FullyConnectedSpec { Depth = -2 } })).Status.Detail);
        Assert.Equal(StatusCode.NotFound, (await Refused(s => s.Dataset = "missing")).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, (await Refused(s => s.Dataset = "../..")).StatusCode);
        Assert.Contains("spec.steps", (await Refused(s => s.Steps = 0)).Status.Detail);
        Assert.Empty((await cluster.Client.ListRunsAsync(new ListRunsRequest())).Runs);
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => cluster.Client.GetRunAsync(new GetRunRequest { Name = "runs/run-x" }).ResponseAsync)).StatusCode);
    }

    [Fact]
    public async Task DeleteRun_Ended_RemovesRecordAndFiles()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(3) });
        await cluster.WatchToEndAsync(run.Name);
        Assert.True(Directory.Exists(cluster.RunFolder(run.Name)));
        await cluster.Client.DeleteRunAsync(new DeleteRunRequest { Name = run.Name });
        Assert.Empty((await cluster.Client.ListRunsAsync(new ListRunsRequest())).Runs);
        Assert.False(Directory.Exists(cluster.RunFolder(run.Name)));
    }

    [Fact]
    public async Task ConcurrentRuns_ShareTheServices_AndTheThirdWaitsForASlot()
    {
        // A kernel service that computes one call at a time and refuses the rest, and no
        // retries: the runs must queue for it rather than be refused (which would pause them).
        await using var cluster = await LoopbackCluster.StartAsync(
            distillerSettings: new Dictionary<string, string?> { ["Distiller:MaxConcurrentRuns"] = "2", ["Distiller:RetryAttempts"] = "1" },
            kernelSettings: new Dictionary<string, string?> { ["KernelService:MaxConcurrentRequests"] = "1" });
        var ids = new List<string>();
        foreach (var steps in new[] { 30, 30, 10 })
            ids.Add((await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(steps) })).Name);

        // Each run's events, judged by the times the distiller gave them: the order in which
        // three separate streams deliver their events says nothing about when things happened.
        var events = await Task.WhenAll(ids.Select(id => cluster.WatchToEndAsync(id)));
        Assert.All(events, run => Assert.Equal(RunState.Succeeded, run[^1].State?.State));
        Assert.All(events, run => Assert.DoesNotContain(run, e => e.State?.State == RunState.Paused));
        DateTime Started(int run) => events[run].First(e => e.State?.State == RunState.Running).Time.ToDateTime();
        DateTime Ended(int run) => events[run][^1].Time.ToDateTime();

        // Two slots: the first two runs were running at the same time, both through the one service.
        Assert.True(Started(1) < Ended(0) && Started(0) < Ended(1),
            $"runs 0 ({Started(0):O} to {Ended(0):O}) and 1 ({Started(1):O} to {Ended(1):O}) did not run at the same time");
        // The third was queued until a slot freed.
        var firstEnd = Ended(0) < Ended(1) ? Ended(0) : Ended(1);
        Assert.True(Started(2) >= firstEnd, $"the third run started at {Started(2):O}, before either of the first two ended ({firstEnd:O})");
    }

    [SkippableFact]
    public async Task Run_OnPostgres_KeepsRunAndEventsInTheDatabase()
    {
        using var database = new StoreDatabase(StoreDatabase.Postgres);
        await using var cluster = await LoopbackCluster.StartAsync(distillerSettings: database.Settings);
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(5) });
        var events = await cluster.WatchToEndAsync(run.Name);

        Assert.Equal(RunState.Succeeded, events[^1].State.State);
        Assert.Equal(events.Count, database.Count($"SELECT COUNT(*) FROM events WHERE run_id = '{RunNames.Id(run.Name)}'"));
        Assert.Equal(1, database.Count("SELECT COUNT(*) FROM runs"));
        Assert.False(File.Exists(Path.Combine(cluster.DataFolder, "distiller.db")));
    }
}
