using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Distill.Core.Distillation;
using Distill.Core.Kernels;
using Distill.Core.Runs;
using Distill.Adapters.Clients;
using Grpc.Net.Client;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Distill.Cli.Commands;

public sealed class KernelServiceBenchmarkSettings : DatasetSettings
{
    [CommandOption("--address <URL>"), Description("Kernel service, e.g. http://127.0.0.1:5051")]
    public string Address { get; init; } = "http://127.0.0.1:5051";

    [CommandOption("--remote-path <PATH>"), Description("The same dataset's path under the service's data root.")]
    public string RemotePath { get; init; } = "mnist";

    [CommandOption("--support <N>"), DefaultValue(10)]
    public int Support { get; init; } = 10;

    [CommandOption("--target-batch <N>"), DefaultValue(5000)]
    public int TargetBatch { get; init; } = 5000;

    [CommandOption("--steps <N>"), Description("Steps per round; rounds alternate service and in-process."), DefaultValue(50)]
    public int Steps { get; init; } = 50;

    [CommandOption("--rounds <N>"), DefaultValue(3)]
    public int Rounds { get; init; } = 3;
}

/// <summary>
/// The cost of the network: the same KIP steps (same data, batches and Adam updates)
/// through a kernel service on loopback and in this process, interleaved in rounds so
/// that machine noise hits both alike. Also measures the service's Gram throughput.
/// </summary>
public sealed class KernelServiceBenchmarkCommand : Command<KernelServiceBenchmarkSettings>
{
    public override int Execute(CommandContext context, KernelServiceBenchmarkSettings settings, CancellationToken cancellation) =>
        RunAsync(settings, cancellation).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(KernelServiceBenchmarkSettings settings, CancellationToken cancellation)
    {
        using var data = DatasetLoading.Load(settings, "Kernel service overhead");
        using var channel = GrpcChannel.ForAddress(settings.Address, new GrpcChannelOptions { MaxReceiveMessageSize = 256 << 20, MaxSendMessageSize = 256 << 20 });
        var remote = new RemoteKernelService(new Protos.Kernel.V1.KernelService.KernelServiceClient(channel));
        var info = await remote.RegisterDatasetAsync(settings.RemotePath, cancellation: cancellation);
        if (info.TrainCount != data.TrainImages.shape[0])
            throw new InvalidOperationException($"the service's '{settings.RemotePath}' has {info.TrainCount} training images, the local data {data.TrainImages.shape[0]}");

        var spec = settings.KernelSpec(data);
        var objective = new KipObjective(spec.Create(), settings.Regularization);
        var sampler = new TargetSampler(data.TrainLabels, data.ClassCount, seed: 0);
        var initial = sampler.Sample(settings.Support, step: -1, stream: 1);
        using var support = data.TrainImages.index_select(0, tensor(initial, dtype: ScalarType.Int64, device: data.TrainImages.device));
        using var labels = CenteredOneHot.Encode(initial.Select(i => data.TrainLabels[i]).ToArray(), data.ClassCount);

        using var computeThread = new Core.Runtime.TensorThreadPool(1, settings.Threads, "benchmark");
        var serverSeconds = new List<double>();

        // The same work both ways: batches by step number, results discarded after checking.
        // In-process steps run on one dedicated thread, as the service's steps do.
        async Task<double> Round(bool remoteStep, long firstStep)
        {
            var times = new List<double>();
            for (long step = firstStep; step < firstStep + settings.Steps; step++)
            {
                var indices = sampler.Sample(settings.TargetBatch, step);
                var watch = Stopwatch.StartNew();
                KipShardResult result;
                if (remoteStep)
                {
                    (result, var computeTime) = await remote.KipShardStepAsync(spec, support, labels, info.Name, indices, indices.Length,
                        settings.Regularization, wantLabelGradient: true, cancellation);
                    serverSeconds.Add(computeTime.TotalMilliseconds);
                }
                else
                {
                    result = await computeThread.RunAsync(() =>
                    {
                        using var scope = NewDisposeScope();
                        using var index = tensor(indices, dtype: ScalarType.Int64, device: data.TrainImages.device);
                        var local = objective.ShardStep(support, labels, data.TrainImages.index_select(0, index), data.TrainTargets.index_select(0, index),
                            indices.Length, wantLabelGradient: true);
                        local.SupportGradient.MoveToOuterDisposeScope();
                        local.Reduction.MoveToOuterDisposeScope();
                        local.LabelGradient?.MoveToOuterDisposeScope();
                        return local;
                    });
                }
                times.Add(watch.Elapsed.TotalMilliseconds);
                if (!double.IsFinite(result.Loss)) throw new InvalidOperationException("non-finite loss");
                result.Dispose();
            }
            times.Sort();
            return times[times.Count / 2];
        }

        await Round(true, 1_000_000);   // warm both paths
        await Round(false, 1_000_000);
        var serviceMedians = new List<double>();
        var localMedians = new List<double>();
        for (int round = 0; round < settings.Rounds; round++)
        {
            serviceMedians.Add(await Round(true, round * settings.Steps));
            localMedians.Add(await Round(false, round * settings.Steps));
        }
        double service = serviceMedians.Order().ElementAt(serviceMedians.Count / 2);
        double local = localMedians.Order().ElementAt(localMedians.Count / 2);

        // Gram throughput: the whole train split against a 100-image support, streamed.
        using var wideSupport = data.TrainImages.narrow(0, 0, 100);
        var gramWatch = Stopwatch.StartNew();
        var entries = await remote.ComputeGramAsync(spec, info.Name, 0, info.TrainCount, wideSupport, cancellation);
        var gramSeconds = gramWatch.Elapsed.TotalSeconds;

        serverSeconds.Sort();
        var serverCompute = serverSeconds[serverSeconds.Count / 2];
        AnsiConsole.MarkupLine($"KIP step (n_s={settings.Support}, n_t={settings.TargetBatch}): service [bold]{service:F2} ms[/] (of which computing on the server {serverCompute:F2} ms), in process [bold]{local:F2} ms[/], ratio [bold]{service / local:F3}[/]");
        AnsiConsole.MarkupLine($"Gram {info.TrainCount} x 100 {spec.Kind} through the service: {entries / gramSeconds / 1e6:F1} M entries/s");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result support={settings.Support} targets={settings.TargetBatch} steps={settings.Steps * settings.Rounds} service_ms={service:F3} in_process_ms={local:F3} ratio={service / local:F3} server_compute_ms={serverCompute:F3} steps_per_second={1000 / service:F2} seconds={(serviceMedians.Sum() * settings.Steps) / 1000:F2} gram_entries_per_second={entries / gramSeconds:F0} peak_rss_mb={LocalRun.PeakResidentMegabytes():F0}"));
        return 0;
    }
}
