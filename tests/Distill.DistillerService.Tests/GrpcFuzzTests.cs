using Distill.Fuzz.Grpc;
using Grpc.Core;
using Grpc.Net.Client;

namespace Distill.DistillerService.Tests;

/// <summary>
/// The gRPC fuzzer (tests/fuzz/Distill.Fuzz.Grpc) with a fixed seed against a loopback kernel
/// service and distiller: a few hundred mutated requests of every RPC, each answered with a
/// documented status, both servers up afterwards, nothing left running. bench/run.sh
/// fuzz-grpc runs the same fuzzer longer, on real processes.
/// </summary>
[Trait("Category", "Fuzz")]
public sealed class GrpcFuzzTests
{
    private const int Seed = 20261129;
    private const int Requests = 300;

    /// <summary>
    /// Bound on the managed heap's growth: a leak of the requests themselves (megabytes each)
    /// passes it within the run. Below it the growth is the runtime's array pools holding the
    /// large buffers of large messages: 86-105 MB here right after 300 requests, 7 MB after
    /// 600 requests and 70 s idle (the pools trim unused arrays after a minute).
    /// </summary>
    private const long HeapGrowthLimit = 256L << 20;

    [Fact]
    public async Task FixedSeed_MutatedRequestsOfEveryRpc_GetOnlyDocumentedAnswers()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        using var kernel = GrpcChannel.ForAddress(cluster.KernelAddresses[0], new GrpcChannelOptions { MaxReceiveMessageSize = 256 << 20 });
        var valid = await ValidRequests.CreateAsync(kernel.CreateCallInvoker(), cluster.Channel.CreateCallInvoker(), TinyDataset.Name);
        long before = GC.GetTotalMemory(forceFullCollection: true);

        // The data root and the distiller's data folder share one temporary folder: naming it is a leak.
        var serverFolder = Path.GetDirectoryName(cluster.DataRoot)!;
        var report = await new GrpcFuzzer(kernel.CreateCallInvoker(), cluster.Channel.CreateCallInvoker(), Seed, serverPaths: [serverFolder])
            .RunAsync(valid, Requests, DateTime.MaxValue);

        long growth = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.True(report.Undocumented.Count == 0,
            string.Join("\n", report.Undocumented.Select(f => $"{f.Method}: {f.Problem}\n  request: {f.Request}")));
        Assert.Equal(0, report.Crashes);
        Assert.Equal(Requests, report.Requests);
        // Every RPC was called: the seed reaches the whole surface.
        Assert.Equal(32, report.Codes.Keys.Select(key => key.Split(' ')[0]).Distinct().Count());
        Assert.True(growth < HeapGrowthLimit, $"managed heap grew by {growth >> 20} MB");
    }

    [Fact]
    public void LeakCheck_FindsAServerFolderOrAStackTraceInTheMessage()
    {
        static RpcException Error(string message) => new(new Status(StatusCode.InvalidArgument, message));
        Assert.NotNull(AnswerCheck.Leak(Error("cannot read /srv/data/mnist/train.gz"), ["/srv/data"]));
        Assert.NotNull(AnswerCheck.Leak(Error("failed\n   at Distill.Core.Data.IdxReader.Read(String path)"), []));
        Assert.NotNull(AnswerCheck.Leak(Error("System.IO.IOException: disk"), []));
        Assert.Null(AnswerCheck.Leak(Error("path: no folder 'mnist' under the data root"), ["/srv/data"]));
    }
}
