using Distill.Protos.Distiller.V1;
using Grpc.Core;
using KernelListDatasetsRequest = Distill.Protos.Kernel.V1.ListDatasetsRequest;

namespace Distill.DistillerService.Tests;

/// <summary>How the distiller uses kernel services: which errors end a run, which datasets it leaves behind, what it reports.</summary>
public class KernelServiceUseTests
{
    [Fact]
    public async Task Run_NonRetryableKernelError_FailsAtOnceNamingTheServiceAndReason()
    {
        // The kernel service cannot hold the dataset: RESOURCE_EXHAUSTED without a RetryInfo.
        await using var cluster = await LoopbackCluster.StartAsync(
            kernelSettings: new Dictionary<string, string?> { ["KernelService:MaxDatasetElements"] = "10" });
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(3) });
        var events = await cluster.WatchToEndAsync(run.Name);

        var end = events[^1].State;
        Assert.Equal(RunState.Failed, end.State);
        Assert.Contains(cluster.KernelAddresses[0], end.Message);
        // Status code and ErrorInfo reason. (The kernel service answers DATASET_BUDGET_EXCEEDED here
        // once its registry stops reading a released dataset's size for the message; until then INTERNAL.)
        Assert.Matches(@"failed: (ResourceExhausted \(DATASET_BUDGET_EXCEEDED\)|Internal \(INTERNAL\)): ", end.Message);
        Assert.DoesNotContain(events, e => e.State?.State == RunState.Paused);
        var stored = await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name });
        Assert.Equal(end.Message, stored.StateMessage);
    }

    [Fact]
    public async Task DistillerRestarts_TenTimesMidRun_KernelServiceHoldsAtMostOneDatasetAndNoneAtTheEnd()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var kernel = cluster.KernelClient();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(100_000) });
        long step = 0;
        for (int i = 0; i < 10; i++)
        {
            if (i > 0) await cluster.StartDistillerAsync();
            // A step of this session: after its i-th resume (the first session started instead).
            int resumes = 0;
            var progress = await cluster.WatchUntilAsync(run.Name, e =>
            {
                if (e.State?.Message.StartsWith("resumed from step", StringComparison.Ordinal) == true) resumes++;
                return resumes == i && e.Progress is not null;
            });
            Assert.True(progress[^1].Progress.Step > step);
            step = progress[^1].Progress.Step;
            Assert.Single((await kernel.ListDatasetsAsync(new KernelListDatasetsRequest())).Datasets);
            await cluster.StopDistillerAsync();
            Assert.Empty((await kernel.ListDatasetsAsync(new KernelListDatasetsRequest())).Datasets);
        }
        await cluster.StartDistillerAsync();
        await cluster.Client.CancelRunAsync(new CancelRunRequest { Name = run.Name });
        Assert.Equal(RunState.Cancelled, (await cluster.WatchToEndAsync(run.Name))[^1].State.State);
        Assert.True((await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name })).Step >= 10);
        Assert.Empty((await kernel.ListDatasetsAsync(new KernelListDatasetsRequest())).Datasets);
    }

    [Fact]
    public async Task Run_Registers_WithALease()
    {
        await using var cluster = await LoopbackCluster.StartAsync(distillerSettings: new Dictionary<string, string?> { ["Distiller:DatasetLeaseSeconds"] = "120" });
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(100_000) });
        await cluster.WatchUntilAsync(run.Name, e => e.Progress is not null);
        var dataset = Assert.Single((await cluster.KernelClient().ListDatasetsAsync(new KernelListDatasetsRequest())).Datasets);
        Assert.Equal(TimeSpan.FromSeconds(120), dataset.LeaseTtl.ToTimeSpan());
        Assert.NotNull(dataset.ExpireTime);
        await cluster.Client.CancelRunAsync(new CancelRunRequest { Name = run.Name });
        await cluster.WatchToEndAsync(run.Name);
    }

    [Fact]
    public async Task ListKernelServices_AfterARun_ReportsLoadTimesAndRuns_ThenTheOutage()
    {
        await using var cluster = await LoopbackCluster.StartAsync(kernelServices: 2);
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(3) });
        await cluster.WatchToEndAsync(run.Name);

        var statuses = (await cluster.Client.ListKernelServicesAsync(new ListKernelServicesRequest())).KernelServices;
        Assert.Equal(cluster.KernelAddresses, statuses.Select(s => s.Address));
        foreach (var status in statuses)
        {
            Assert.True(status.Reachable, status.Error);
            Assert.False(string.IsNullOrEmpty(status.Version));
            Assert.Equal("cpu", status.Device);
            Assert.True(status.MaxConcurrentRequests >= 1);
            Assert.Equal(0, status.CallsInFlight);
            Assert.Equal([run.Name], status.Runs);
            Assert.True(status.RecentComputeTime.ToTimeSpan() > TimeSpan.Zero);
            Assert.NotNull(status.CheckTime);
        }

        await cluster.StopKernelAsync(1);
        var after = (await cluster.Client.ListKernelServicesAsync(new ListKernelServicesRequest())).KernelServices;
        Assert.True(after[0].Reachable);
        Assert.False(after[1].Reachable);
        Assert.Contains("Unavailable", after[1].Error);
    }

    [Fact]
    public async Task ListDatasets_DataRoot_ListsTheFoldersWithTheirFormat()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        Directory.CreateDirectory(Path.Combine(cluster.DataRoot, "not-a-dataset"));
        var datasets = (await cluster.Client.ListDatasetsAsync(new ListDatasetsRequest())).Datasets;
        var tiny = Assert.Single(datasets);
        Assert.Equal((TinyDataset.Name, Protos.Kernel.V1.DatasetFormat.Idx), (tiny.Path, tiny.Format));
    }
}
