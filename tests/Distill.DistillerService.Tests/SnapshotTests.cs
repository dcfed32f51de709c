using System.IO.Compression;
using Distill.Core.Errors;
using Distill.Core.Output;
using Distill.Core.Runs;
using Distill.Protos.Distiller.V1;
using Grpc.Core;

namespace Distill.DistillerService.Tests;

public class SnapshotTests
{
    [Fact]
    public async Task Snapshots_EveryCheckpointAndTheStart_ListedGotExportedAndEvaluated()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(10) });
        var events = await cluster.WatchToEndAsync(run.Name);
        Assert.Equal([$"{run.Name}/snapshots/5", $"{run.Name}/snapshots/10"], events.Where(e => e.Checkpoint is not null).Select(e => e.Checkpoint.Snapshot));

        var list = await cluster.Client.ListSnapshotsAsync(new ListSnapshotsRequest { Parent = run.Name });
        Assert.Equal([0L, 5L, 10L], list.Snapshots.Select(s => s.Step));
        Assert.Equal(3, list.TotalSize);
        Assert.All(list.Snapshots, s => Assert.Null(s.Images));
        var paged = await cluster.Client.ListSnapshotsAsync(new ListSnapshotsRequest { Parent = run.Name, PageSize = 2, View = SnapshotView.Full });
        Assert.Equal([0L, 5L], paged.Snapshots.Select(s => s.Step));
        Assert.NotNull(paged.Snapshots[0].Images);
        var rest = await cluster.Client.ListSnapshotsAsync(new ListSnapshotsRequest { Parent = run.Name, PageSize = 2, PageToken = paged.NextPageToken });
        Assert.Equal([10L], rest.Snapshots.Select(s => s.Step));
        Assert.Equal("", rest.NextPageToken);

        var start = await cluster.Client.GetSnapshotAsync(new GetSnapshotRequest { Name = $"{run.Name}/snapshots/0" });
        var five = await cluster.Client.GetSnapshotAsync(new GetSnapshotRequest { Name = $"{run.Name}/snapshots/5" });
        Assert.Equal([10L, 1, 8, 8], five.Images.Shape);
        Assert.Equal([10L, 1, 8, 8], five.PreprocessedImages.Shape);
        Assert.Equal([10L, 10], five.Labels.Shape);
        Assert.Equal(Enumerable.Range(0, 10), five.Classes.Order());
        Assert.Equal(10, five.ClassNames.Count);
        Assert.NotEqual(start.PreprocessedImages.Data, five.PreprocessedImages.Data);
        var basic = await cluster.Client.GetSnapshotAsync(new GetSnapshotRequest { Name = $"{run.Name}/snapshots/5", View = SnapshotView.Basic });
        Assert.Null(basic.Images);

        // The snapshot at the last checkpoint is the finished set.
        var (finished, _) = SafetensorsFile.Read(Path.Combine(cluster.RunFolder(run.Name), LocalRun.DistilledFile));
        var (last, _) = SafetensorsFile.Read(Path.Combine(cluster.RunFolder(run.Name), LocalRun.SnapshotsFolder, LocalRun.SnapshotFileName(10)));
        Assert.Equal(finished["images"].Data, last["images"].Data);

        var missing = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.GetSnapshotAsync(new GetSnapshotRequest { Name = $"{run.Name}/snapshots/7" }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        Assert.Equal(ErrorReasons.SnapshotNotFound, missing.GetRpcStatus()!.GetDetail<Google.Rpc.ErrorInfo>()!.Reason);

        // Export at a step: the file name comes from the server.
        using var call = cluster.Client.ExportRun(new ExportRunRequest { Name = run.Name, Format = ExportFormat.Npz, Step = 5 });
        var output = new MemoryStream();
        string? fileName = null;
        await foreach (var chunk in call.ResponseStream.ReadAllAsync())
        {
            fileName ??= chunk.FileName;
            chunk.Data.WriteTo(output);
        }
        Assert.Equal($"{run.Name["runs/".Length..]}-step-5.npz", fileName);
        output.Position = 0;
        using (var zip = new ZipArchive(output))
            Assert.Equal(["classes.npy", "images.npy", "images_pixels.npy", "labels.npy"], zip.Entries.Select(e => e.Name).Order());

        var atFive = await cluster.Client.EvaluateRunAsync(new EvaluateRunRequest { Name = run.Name, Step = 5 });
        var latest = await cluster.Client.EvaluateRunAsync(new EvaluateRunRequest { Name = run.Name });
        Assert.Equal(5, atFive.Step);
        // The support set of step 5, not the latest one: the two score differently.
        Assert.True(latest.Step > 5, $"latest evaluation at step {latest.Step}");
        Assert.NotEqual(latest.TestMse, atFive.TestMse);
        var noSuchStep = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.EvaluateRunAsync(new EvaluateRunRequest { Name = run.Name, Step = 3 }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, noSuchStep.StatusCode);
    }

    [Fact]
    public void Thin_OverTheLimit_KeepsFirstAndLatestAndSpreadsTheRest()
    {
        var kept = new List<long>();
        for (long step = 0; step <= 5000; step += 50)
        {
            kept.Add(step);
            foreach (var dropped in SnapshotPolicy.Thin(kept, 10)) kept.Remove(dropped);
            Assert.True(kept.Count <= 10);
            Assert.Equal(0, kept[0]);
            Assert.Equal(step, kept[^1]);
        }
        // Evenly spread: no gap more than three times another.
        var gaps = kept.Zip(kept.Skip(1), (a, b) => b - a).ToList();
        Assert.True(gaps.Max() <= 3 * gaps.Min(), string.Join(",", kept));
    }
}
