using Distill.Protos.Distiller.V1;
using Grpc.Core;

namespace Distill.DistillerService.Tests;

public class SecurityTests
{
    private static readonly Metadata Authorized = new() { { "authorization", "Bearer distiller-key" } };

    [Fact]
    public async Task ApiKeys_DistillerRefusesCallsWithoutItsKey_AndPresentsTheKernelServicesKey()
    {
        await using var cluster = await LoopbackCluster.StartAsync(
            distillerSettings: new Dictionary<string, string?> { ["Server:ApiKey"] = "distiller-key", ["Distiller:KernelServiceApiKey"] = "kernel-key" },
            kernelSettings: new Dictionary<string, string?> { ["Server:ApiKey"] = "kernel-key" });

        var refused = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.ListRunsAsync(new ListRunsRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);

        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(3) }, Authorized);
        Assert.Equal(RunState.Succeeded, (await WatchToEndAsync(cluster, run.Name))[^1].State.State);
    }

    [Fact]
    public async Task ApiKeys_WrongKernelServiceKey_FailsTheRunSayingSo()
    {
        await using var cluster = await LoopbackCluster.StartAsync(
            distillerSettings: new Dictionary<string, string?> { ["Distiller:KernelServiceApiKey"] = "guess" },
            kernelSettings: new Dictionary<string, string?> { ["Server:ApiKey"] = "kernel-key" });

        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(3) });
        var last = (await cluster.WatchToEndAsync(run.Name))[^1].State;
        Assert.Equal(RunState.Failed, last.State);
        Assert.Contains("Unauthenticated", last.Message);
    }

    private static async Task<List<RunEvent>> WatchToEndAsync(LoopbackCluster cluster, string id)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        using var call = cluster.Client.WatchRun(new WatchRunRequest { Name = id }, Authorized, cancellationToken: cancel.Token);
        var events = new List<RunEvent>();
        await foreach (var e in call.ResponseStream.ReadAllAsync(cancel.Token)) events.Add(e);
        return events;
    }
}
