using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Distill.DistillerService.Extensions;
using Distill.DistillerService.Kernels;
using Distill.KernelService.Extensions;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests;

/// <summary>
/// A dns:/// entry names replicas that come and go: two kernel services on one port at two
/// loopback addresses stand behind a name whose answer the test controls.
/// </summary>
public sealed class KernelDiscoveryTests : IAsyncDisposable
{
    private const string Name = "kernels.test";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("distill-discovery-");
    private readonly List<WebApplication> _apps = [];
    private volatile IPAddress[]? _answer;  // null: the name does not resolve (yet)
    private readonly SemaphoreSlim _arrived = new(0);  // released for each event the watcher receives

    [Fact]
    public async Task DnsEntry_WaitsForTheNameToResolve_ThenFollowsAServiceToItsNewAddress()
    {
        var dataRoot = Path.Combine(_directory.FullName, "data");
        TinyDataset.Write(dataRoot);
        var first = await StartAsync(KernelServiceHost.Build(["--urls", "http://127.0.0.1:0"], b => LoopbackCluster.Quiet(b, new Dictionary<string, string?> { ["KernelService:DataRoot"] = dataRoot })));
        var port = new Uri(LoopbackCluster.AddressOf(first)).Port;
        var second = await StartAsync(KernelServiceHost.Build(["--urls", $"http://127.0.0.2:{port}"], b => LoopbackCluster.Quiet(b, new Dictionary<string, string?> { ["KernelService:DataRoot"] = dataRoot })));

        HostResolver resolve = (host, _) =>
        {
            Assert.Equal(Name, host);
            return _answer is { } answer ? Task.FromResult(answer) : throw new SocketException((int)SocketError.HostNotFound);
        };
        var distiller = await StartAsync(DistillerServiceHost.Build(["--urls", "http://127.0.0.1:0"], builder =>
        {
            LoopbackCluster.Quiet(builder, new Dictionary<string, string?>
            {
                ["Distiller:DataRoot"] = dataRoot,
                ["Distiller:DataFolder"] = Path.Combine(_directory.FullName, "distiller"),
                ["Distiller:KernelServices:0"] = $"dns:///{Name}:{port}",
                ["Distiller:ResolveIntervalSeconds"] = "0.1",
                ["Distiller:ProbeIntervalSeconds"] = "0.1",
            });
            builder.Services.AddSingleton(resolve);
        }));
        using var channel = GrpcChannel.ForAddress(LoopbackCluster.AddressOf(distiller));
        var client = new DistillerClient(channel);

        var run = await client.StartRunAsync(new StartRunRequest { Spec = LoopbackCluster.Spec(40) });
        var events = new ConcurrentQueue<RunEvent>();
        var watching = Task.Run(async () =>
        {
            using var call = client.WatchRun(new WatchRunRequest { Name = run.Name });
            await foreach (var e in call.ResponseStream.ReadAllAsync())
            {
                events.Enqueue(e);
                _arrived.Release();
            }
        });

        // The name does not resolve yet: the run waits.
        await Until(() => events.Any(e => e.State?.State == RunState.Paused), "the run to pause while the name does not resolve");
        Assert.DoesNotContain(events, e => e.Progress is not null);

        _answer = [IPAddress.Parse("127.0.0.1")];
        await Until(() => events.Any(e => e.Progress?.Step >= 5), "steps on the first service once the name resolves");

        // The service moves: the name now answers with the other address, and the old one stops.
        _answer = [IPAddress.Parse("127.0.0.2")];
        await first.StopAsync();
        await watching.WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal(RunState.Succeeded, events.Last().State.State);
        Assert.Equal(40, events.Where(e => e.Progress is not null).Max(e => e.Progress.Step));
        Assert.Equal([$"http://127.0.0.2:{port}"], distiller.Services.GetRequiredService<KernelServicePool>().Endpoints.Select(e => e.Address));
    }

    private async Task<WebApplication> StartAsync(WebApplication app)
    {
        await app.StartAsync();
        _apps.Add(app);
        return app;
    }

    /// <summary>Waits, woken by each event of the run, until <paramref name="condition"/> holds.</summary>
    private async Task Until(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (!condition())
        {
            try { await _arrived.WaitAsync(timeout.Token); }
            catch (OperationCanceledException) { Assert.Fail($"timed out waiting for {what}"); }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var app in Enumerable.Reverse(_apps))
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        _directory.Delete(recursive: true);
    }
}
