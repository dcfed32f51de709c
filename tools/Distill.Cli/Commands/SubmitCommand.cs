using System.ComponentModel;
using System.Globalization;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
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

    [CommandOption("--lr <X>"), DefaultValue(0.01)]
    public double LearningRate { get; init; } = 0.01;

    [CommandOption("--target-batch <N>"), DefaultValue(5000)]
    public int TargetBatch { get; init; } = 5000;

    [CommandOption("--kernel <KIND>"), Description("ntk | nngp"), DefaultValue("ntk")]
    public string Kernel { get; init; } = "ntk";

    [CommandOption("--eval-every <N>"), DefaultValue(0)]
    public int EvaluateEvery { get; init; }

    [CommandOption("--seed <N>"), DefaultValue(0)]
    public int Seed { get; init; }

    [CommandOption("--api-key <KEY>"), Description("Key the distiller requires, if any.")]
    public string? ApiKey { get; init; }
}

/// <summary>Starts a run on a distiller service and follows it until it ends.</summary>
public sealed class SubmitCommand : Command<SubmitSettings>
{
    public override int Execute(CommandContext context, SubmitSettings settings, CancellationToken cancellation) =>
        RunAsync(settings, cancellation).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(SubmitSettings settings, CancellationToken cancellation)
    {
        using var channel = GrpcChannel.ForAddress(settings.Distiller);
        var client = new Distiller.DistillerClient(channel);
        var headers = settings.ApiKey is null ? null : new Metadata { { "authorization", $"Bearer {settings.ApiKey}" } };
        var spec = new RunSpec
        {
            Dataset = settings.Dataset,
            Method = settings.Method == "ls" ? Method.LabelSolve : Method.Kip,
            Kernel = new Protos.Kernel.V1.KernelSpec { Kind = settings.Kernel == "nngp" ? Protos.Kernel.V1.KernelKind.Nngp : Protos.Kernel.V1.KernelKind.Ntk },
            SupportPerClass = settings.SupportPerClass, Steps = settings.Steps, LearningRate = settings.LearningRate,
            TargetBatch = settings.TargetBatch, EvaluateEvery = settings.EvaluateEvery, Seed = settings.Seed,
        };
        var run = await client.StartRunAsync(new StartRunRequest { Spec = spec }, headers, cancellationToken: cancellation);
        AnsiConsole.MarkupLine($"run [bold]{run.Id}[/] queued on {Markup.Escape(settings.Distiller)}");

        double stepsPerSecond = 0, accuracy = -1;
        long step = 0;
        var start = DateTime.UtcNow;
        using var watch = client.WatchRun(new WatchRunRequest { RunId = run.Id }, headers, cancellationToken: cancellation);
        RunState state = RunState.Queued;
        await foreach (var e in watch.ResponseStream.ReadAllAsync(cancellation))
        {
            switch (e.EventCase)
            {
                case RunEvent.EventOneofCase.State:
                    state = e.State.State;
                    Console.WriteLine($"state {state}: {e.State.Message}");
                    break;
                case RunEvent.EventOneofCase.Progress:
                    step = e.Progress.Step;
                    stepsPerSecond = e.Progress.StepsPerSecond;
                    if (step % Math.Max(1, settings.Steps / 10) == 0)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step}/{e.Progress.TotalSteps} loss {e.Progress.Loss:E4} {stepsPerSecond:F2} steps/s"));
                    break;
                case RunEvent.EventOneofCase.Evaluation:
                    accuracy = e.Evaluation.TestAccuracy;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {e.Evaluation.Step} test_accuracy {accuracy:F4}"));
                    break;
            }
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result run={run.Id} state={state} test_accuracy={accuracy:F4} steps={step} seconds={(DateTime.UtcNow - start).TotalSeconds:F2} steps_per_second={stepsPerSecond:F3}"));
        return state == RunState.Succeeded ? 0 : 1;
    }
}
