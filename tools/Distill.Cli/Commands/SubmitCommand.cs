using System.ComponentModel;
using System.Globalization;
using Distill.Client;
using Grpc.Net.Client;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Distill.Cli.Commands;

public sealed class SubmitSettings : CommandSettings
{
    [CommandOption("--distiller <URL>"), Description("Distiller service address."), DefaultValue("http://127.0.0.1:5052")]
    public string Distiller { get; init; } = "http://127.0.0.1:5052";

    [CommandOption("--dataset <PATH>"), Description("Dataset folder under the services' data root, e.g. mnist.")]
    public string Dataset { get; init; } = "mnist";

    [CommandOption("--method <METHOD>"), Description("kip | ls"), DefaultValue("kip")]
    public string Method { get; init; } = "kip";

    [CommandOption("--ipc <N>"), DefaultValue(1)]
    public int SupportPerClass { get; init; } = 1;

    [CommandOption("--steps <N>"), DefaultValue(300)]
    public int Steps { get; init; } = 300;

    [CommandOption("--lr <X>"), Description("Adam's learning rate (the server's default: 0.01; 0.003 with --feature-pool).")]
    public double? LearningRate { get; init; }

    [CommandOption("--target-batch <N>"), Description("Targets per step (the server's default: 5000; 2000 with --feature-pool).")]
    public int? TargetBatch { get; init; }

    [CommandOption("--kernel <KIND>"), Description("ntk | nngp"), DefaultValue("ntk")]
    public string Kernel { get; init; } = "ntk";

    [CommandOption("--architecture <NAME>"), Description("fc | convnet | convnet3 | myrtle5 (convolutional kernels need --image-shape)."), DefaultValue("fc")]
    public string Architecture { get; init; } = "fc";

    [CommandOption("--image-shape <CxHxW>"), Description("Convolutional kernels: the dataset's image shape, e.g. 1x28x28; the server refuses any other.")]
    public string? ImageShape { get; init; }

    [CommandOption("--readout <NAME>"), Description("Convolutional kernels: flatten | gap (global average pooling)."), DefaultValue("flatten")]
    public string Readout { get; init; } = "flatten";

    [CommandOption("--random-features <N>"), Description("Convolutional NNGP estimated with N random finite networks (RFAD); implies nngp.")]
    public int? RandomFeatures { get; init; }

    [CommandOption("--feature-pool <P>"), Description("KIP on random ConvNet features: a pool of P random networks whose target features the kernel services compute once, a shard each (needs a convolutional --architecture; implies nngp).")]
    public int? FeaturePool { get; init; }

    [CommandOption("--pool-sample <K>"), Description("Feature pool: networks sampled per step (server default 8).")]
    public int? PoolSample { get; init; }

    [CommandOption("--pool-width <N>"), Description("Feature pool: channels of each network's convolutions (server default 64).")]
    public int? PoolWidth { get; init; }

    [CommandOption("--pool-targets <N>"), Description("Feature pool: class-balanced training images whose features are stored (server default 10000).")]
    public int? PoolTargets { get; init; }

    [CommandOption("--validate-every <N>"), Description("Feature pool: steps between held-out validations, which choose the step kept (server default 100; 0: the last step).")]
    public int? ValidateEvery { get; init; }

    [CommandOption("--test-subset <N>"), Description("Feature pool: the exact kernel scores a fixed class-balanced subset of N test images (server default: all).")]
    public int? TestSubset { get; init; }

    [CommandOption("--mirror"), Description("Feature pool: the kernel sees each support image and its horizontal mirror image.")]
    public bool Mirror { get; init; }

    [CommandOption("--rf-seed <N>"), Description("Feature pool: seed the random networks are drawn from (as in distill kip)."), DefaultValue(0UL)]
    public ulong NetworkSeed { get; init; }

    [CommandOption("--loss <LOSS>"), Description("Feature pool: mse | platt."), DefaultValue("mse")]
    public string Loss { get; init; } = "mse";

    [CommandOption("--eval-every <N>"), DefaultValue(0)]
    public int EvaluateEvery { get; init; }

    [CommandOption("--seed <N>"), DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--api-key <KEY>"), Description("Key the distiller requires, if any.")]
    public string? ApiKey { get; init; }

    /// <summary>The kernel the options name; argument errors name the option.</summary>
    public KernelSpecification KernelSpecification()
    {
        var kind = Kernel == "nngp" || FeaturePool is not null ? KernelKind.Nngp : KernelKind.Ntk;
        ConvolutionalNetwork network;
        switch (Architecture.ToLowerInvariant())
        {
            case "fc": return new KernelSpecification(Kind: kind);
            case "convnet": network = ConvolutionalNetwork.ConvNet; break;
            case "convnet3": network = ConvolutionalNetwork.ConvNet3; break;
            case "myrtle5": network = ConvolutionalNetwork.Myrtle5; break;
            default: throw new ArgumentException($"--architecture: expected fc, convnet, convnet3 or myrtle5, got '{Architecture}'");
        }
        var shape = (ImageShape ?? throw new ArgumentException("--image-shape: required for a convolutional kernel (CxHxW, e.g. 1x28x28)"))
            .Split('x').Select(part => int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 0).ToArray();
        if (shape.Length != 3 || shape.Contains(0))
            throw new ArgumentException($"--image-shape: expected CxHxW with positive sizes, got '{ImageShape}'");
        var readout = Readout.ToLowerInvariant() switch
        {
            "flatten" => ConvolutionalReadout.Flatten,
            "gap" => ConvolutionalReadout.GlobalAveragePool,
            _ => throw new ArgumentException($"--readout: expected flatten or gap, got '{Readout}'"),
        };
        return RandomFeatures is { } networks
            ? Client.KernelSpecification.RandomFeatureKernel(network, shape[0], shape[1], shape[2], networks, readout: readout)
            : Client.KernelSpecification.ConvolutionalKernel(network, shape[0], shape[1], shape[2], kind, readout);
    }

    /// <summary>The feature pool the options name, or null.</summary>
    public FeaturePoolSpecification? FeaturePoolSpecification()
    {
        if (FeaturePool is null) return null;
        if (Architecture.Equals("fc", StringComparison.OrdinalIgnoreCase) || RandomFeatures is not null)
            throw new ArgumentException("--feature-pool: needs a convolutional --architecture and no --random-features (the pool draws its own networks)");
        return new FeaturePoolSpecification
        {
            PoolSize = FeaturePool, PoolSample = PoolSample, Width = PoolWidth, TargetSubset = PoolTargets, ValidateEvery = ValidateEvery, TestSubset = TestSubset,
            Mirror = Mirror, NetworkSeed = NetworkSeed,
            Loss = Loss.ToLowerInvariant() switch
            {
                "mse" => PoolLoss.Mse,
                "platt" => PoolLoss.Platt,
                _ => throw new ArgumentException($"--loss: expected mse or platt, got '{Loss}'"),
            },
        };
    }

    public override ValidationResult Validate()
    {
        try
        {
            KernelSpecification();
            FeaturePoolSpecification();
        }
        catch (ArgumentException e) { return ValidationResult.Error(e.Message); }
        return ValidationResult.Success();
    }

    [CommandOption("--request-id <ID>"), Description("Makes the submit idempotent across invocations: the same id returns the run it started. Default: a new GUID.")]
    public string? RequestId { get; init; }
}

/// <summary>Starts a run on a distiller service and follows it until it ends.</summary>
public sealed class SubmitCommand : Command<SubmitSettings>
{
    private const int Attempts = 5;

    public override int Execute(CommandContext context, SubmitSettings settings, CancellationToken cancellation) =>
        RunAsync(settings, cancellation).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(SubmitSettings settings, CancellationToken cancellation)
    {
        using var channel = GrpcChannel.ForAddress(settings.Distiller);
        var client = new DistillerClient(channel, settings.ApiKey);
        var labelSolve = settings.Method == "ls";
        var spec = new RunSpecification
        {
            Dataset = settings.Dataset,
            Method = labelSolve ? DistillationMethod.LabelSolve : DistillationMethod.Kip,
            Kernel = settings.KernelSpecification(),
            SupportPerClass = settings.SupportPerClass,
            // Label Solve takes no steps: the server refuses any but 0.
            Steps = labelSolve ? 0 : settings.Steps,
            LearningRate = settings.LearningRate,
            TargetBatch = settings.TargetBatch,
            EvaluateEvery = settings.EvaluateEvery,
            Seed = settings.Seed,
            FeaturePool = settings.FeaturePoolSpecification(),
        };
        // One request id for every attempt: a StartRun retried after a lost reply returns the
        // run the first attempt created instead of starting a second one.
        var requestId = settings.RequestId ?? Guid.NewGuid().ToString();
        var run = await Retrying(() => client.StartRunAsync(spec, requestId, cancellation), cancellation);
        AnsiConsole.MarkupLine($"run [bold]{Markup.Escape(run.Id)}[/] queued on {Markup.Escape(settings.Distiller)}");

        double stepsPerSecond = 0, accuracy = -1;
        long step = 0, sequence = 0;
        var start = DateTime.UtcNow;
        var state = run.State;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                // A broken watch picks up after the last event seen: sequence numbers are gapless.
                await foreach (var e in client.WatchRunAsync(run.Id, sequence, cancellationToken: cancellation))
                {
                    sequence = e.Sequence;
                    switch (e)
                    {
                        case StateChangedEvent changed:
                            state = changed.State;
                            Console.WriteLine($"state {state}: {changed.Message}");
                            break;
                        case StepEvent progress:
                            step = progress.Step;
                            stepsPerSecond = progress.StepsPerSecond;
                            if (step % Math.Max(1, settings.Steps / 10) == 0)
                                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step}/{progress.TotalSteps} loss {progress.Loss:E4} {stepsPerSecond:F2} steps/s"));
                            break;
                        case PhaseEvent phase:
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"{phase.What}: {phase.Done}/{phase.Total} {phase.Unit} ({phase.Elapsed.TotalSeconds:F0} s)"));
                            break;
                        case EvaluationEvent evaluation:
                            accuracy = evaluation.TestAccuracy;
                            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {evaluation.Step} test_accuracy {accuracy:F4}"));
                            break;
                    }
                }
                break;
            }
            catch (DistillerException e) when (e.IsRetryable && attempt < Attempts)
            {
                await Task.Delay(e.RetryDelay ?? TimeSpan.FromSeconds(attempt), cancellation);
            }
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result run={run.Id} state={state} test_accuracy={accuracy:F4} steps={step} seconds={(DateTime.UtcNow - start).TotalSeconds:F2} steps_per_second={stepsPerSecond:F3}"));
        return state == RunStatus.Succeeded ? 0 : 1;
    }

    /// <summary>Repeats a call that failed in a way the API calls retryable (UNAVAILABLE, DEADLINE_EXCEEDED, a RetryInfo).</summary>
    private static async Task<T> Retrying<T>(Func<Task<T>> call, CancellationToken cancellation)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (DistillerException e) when (e.IsRetryable && attempt < Attempts)
            {
                await Task.Delay(e.RetryDelay ?? TimeSpan.FromSeconds(attempt), cancellation);
            }
        }
    }
}
