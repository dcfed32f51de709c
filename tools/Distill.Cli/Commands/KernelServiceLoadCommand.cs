using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Distill.Adapters.Clients;
using Distill.Core.Distillation;
using Distill.Core.Kernels;
using Grpc.Core;
using Grpc.Net.Client;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

public sealed class KernelServiceLoadSettings : CommandSettings
{
    [CommandOption("--address <URL>"), Description("Kernel service, e.g. http://127.0.0.1:5051")]
    public string Address { get; init; } = "http://127.0.0.1:5051";

    [CommandOption("--remote-path <PATH>"), Description("A dataset under the service's data root.")]
    public string RemotePath { get; init; } = "mnist";

    [CommandOption("--clients <N>"), Description("Concurrent callers (twice the service's MaxConcurrentRequests loads it past its limit)."), DefaultValue(8)]
    public int Clients { get; init; } = 8;

    [CommandOption("--seconds <S>"), DefaultValue(60)]
    public int Seconds { get; init; } = 60;

    [CommandOption("--support <N>"), DefaultValue(10)]
    public int Support { get; init; } = 10;

    [CommandOption("--target-batch <N>"), DefaultValue(2000)]
    public int TargetBatch { get; init; } = 2000;

    public override ValidationResult Validate() =>
        Clients < 1 ? ValidationResult.Error("--clients must be at least 1")
        : Seconds < 1 ? ValidationResult.Error("--seconds must be at least 1")
        : Support < 1 || TargetBatch < 1 ? ValidationResult.Error("--support and --target-batch must be at least 1")
        : ValidationResult.Success();
}

/// <summary>
/// Sustained load on one kernel service: concurrent callers send KIP shard steps for a fixed
/// time. A refusal that carries RetryInfo is waited out as the distiller would; a refusal
/// without one, or any other error, is counted as an error. Latency counts answered calls only.
/// </summary>
public sealed class KernelServiceLoadCommand : Command<KernelServiceLoadSettings>
{
    public override int Execute(CommandContext context, KernelServiceLoadSettings settings, CancellationToken cancellation) =>
        RunAsync(settings, cancellation).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(KernelServiceLoadSettings settings, CancellationToken cancellation)
    {
        using var channel = GrpcChannel.ForAddress(settings.Address, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 });
        var client = new Protos.Kernel.V1.KernelService.KernelServiceClient(channel);
        var remote = new RemoteKernelService(client);
        var dataset = await remote.RegisterDatasetAsync(settings.RemotePath, cancellation: cancellation);
        try
        {
            return await LoadAsync(settings, remote, dataset, cancellation);
        }
        finally
        {
            // Leave the service as it was, so that repeated loads measure no growth of our own making.
            await client.DropDatasetAsync(new Protos.Kernel.V1.DropDatasetRequest { Name = dataset.Name });
        }
    }

    private static async Task<int> LoadAsync(KernelServiceLoadSettings settings, RemoteKernelService remote, Protos.Kernel.V1.Dataset dataset, CancellationToken cancellation)
    {
        var spec = new KernelSpec();  // the fully connected NTK of a KIP run's defaults
        using var support = randn([settings.Support, dataset.FeatureCount], dtype: ScalarType.Float64, generator: new Generator(0));
        using var labels = CenteredOneHot.Encode(Enumerable.Range(0, settings.Support).Select(i => i % dataset.ClassCount).ToArray(), dataset.ClassCount);

        var latencies = new List<double>();
        long refused = 0, errors = 0;
        var errorKinds = new Dictionary<string, int>();
        var stop = DateTime.UtcNow.AddSeconds(settings.Seconds);
        var wall = Stopwatch.StartNew();
        AnsiConsole.MarkupLine($"{settings.Clients} callers for {settings.Seconds} s on {settings.Address}: KIP shard steps, support {settings.Support}, targets {settings.TargetBatch}");

        async Task Caller(int caller)
        {
            var rows = new Random(caller);
            while (DateTime.UtcNow < stop && !cancellation.IsCancellationRequested)
            {
                var indices = Enumerable.Range(0, settings.TargetBatch).Select(_ => (long)rows.NextInt64(dataset.TrainCount)).ToArray();
                var watch = Stopwatch.StartNew();
                try
                {
                    var (result, _) = await remote.KipShardStepAsync(spec, support, labels, dataset.Name, indices, indices.Length,
                        1e-6, wantLabelGradient: false, cancellation);
                    result.Dispose();
                    lock (latencies) latencies.Add(watch.Elapsed.TotalMilliseconds);
                }
                catch (RpcException e) when (KernelErrors.RetryDelay(e) is { } delay)
                {
                    Interlocked.Increment(ref refused);
                    await Task.Delay(delay, cancellation);
                }
                catch (RpcException e)
                {
                    Interlocked.Increment(ref errors);
                    lock (errorKinds) errorKinds[e.StatusCode.ToString()] = errorKinds.GetValueOrDefault(e.StatusCode.ToString()) + 1;
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(c => Task.Run(() => Caller(c))));
        var seconds = wall.Elapsed.TotalSeconds;
        latencies.Sort();
        double Percentile(double p) => latencies.Count == 0 ? double.NaN : latencies[Math.Clamp((int)Math.Ceiling(p * latencies.Count) - 1, 0, latencies.Count - 1)];
        foreach (var (kind, count) in errorKinds) AnsiConsole.MarkupLine($"[red]{count} x {kind}[/]");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result clients={settings.Clients} seconds={seconds:F1} calls={latencies.Count} throughput_per_s={latencies.Count / seconds:F2} p50_ms={Percentile(0.5):F1} p99_ms={Percentile(0.99):F1} max_ms={(latencies.Count == 0 ? double.NaN : latencies[^1]):F1} refused_with_retry_info={refused} errors={errors}"));
        return 0;  // errors are a figure of the result line, not a failure to measure
    }
}
