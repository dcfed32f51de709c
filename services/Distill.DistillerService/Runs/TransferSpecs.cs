using Distill.Core.Errors;
using Distill.Core.Transfer;
using Distill.Protos.Distiller.V1;
using CoreProtocol = Distill.Core.Transfer.TransferProtocol;
using ProtocolMessage = Distill.Protos.Distiller.V1.TransferProtocol;

namespace Distill.DistillerService.Runs;

/// <summary>A transfer evaluation: the engine's options, how many networks, and the images drawn around them.</summary>
/// <param name="HeldOut">Training images held out for early stopping (0 under the standard protocol).</param>
/// <param name="MaxTest">Test images scored, class-balanced; null: all.</param>
public sealed record TransferPlan(TransferOptions Options, int Seeds, int HeldOut, int? MaxTest);

/// <summary>
/// TransferSpec messages to the engine's options and back. Every field is bounded (a width or
/// epoch count is time and memory on the distiller), and a wrong one is an
/// <see cref="InvalidFieldException"/> naming it as sent, e.g. transfer.width.
/// </summary>
public static class TransferSpecs
{
    public const int DefaultSeeds = 5, MaxSeeds = 20, MaxWidth = 1024, MaxEpochs = 10_000, DefaultHeldOut = 1000, MaxHeldOut = 50_000,
        MaxPatience = 1000;
    public const double MaxLearningRate = 10;

    public static TransferPlan ToPlan(this TransferSpec spec, string field = "transfer")
    {
        var protocol = spec.Protocol switch
        {
            ProtocolMessage.Unspecified or ProtocolMessage.Kernel => CoreProtocol.Kernel,
            ProtocolMessage.Standard => CoreProtocol.Standard,
            _ => throw new InvalidFieldException($"{field}.protocol", $"unknown protocol {(int)spec.Protocol}"),
        };
        int Bounded(bool has, int value, int fallback, int min, int max, string name) =>
            !has ? fallback
            : value >= min && value <= max ? value
            : throw new InvalidFieldException($"{field}.{name}", $"must be {min} to {max}, got {value}");

        var o = TransferOptions.For(protocol);
        o = o with
        {
            Width = Bounded(spec.HasWidth, spec.Width, o.Width, 1, MaxWidth, "width"),
            Epochs = Bounded(spec.HasEpochs, spec.Epochs, o.Epochs, 1, MaxEpochs, "epochs"),
            EvalEvery = Bounded(spec.HasEvalEvery, spec.EvalEvery, o.EvalEvery, 0, MaxEpochs, "eval_every"),
            Patience = Bounded(spec.HasPatience, spec.Patience, o.Patience, 0, MaxPatience, "patience"),
        };
        if (spec.HasLearningRate)
            o = o with
            {
                LearningRate = spec.LearningRate is > 0 and <= MaxLearningRate ? spec.LearningRate
                    : throw new InvalidFieldException($"{field}.learning_rate", $"must be in (0, {MaxLearningRate}], got {spec.LearningRate}"),
            };
        int seeds = Bounded(spec.HasSeeds, spec.Seeds, DefaultSeeds, 1, MaxSeeds, "seeds");
        int heldOut = Bounded(spec.HasHeldOut, spec.HeldOut, DefaultHeldOut, 0, MaxHeldOut, "held_out");
        // Only the kernel protocol stops early, and only when it evaluates.
        if (protocol != CoreProtocol.Kernel || o.EvalEvery == 0) heldOut = 0;
        int? maxTest = spec.HasMaxTest
            ? spec.MaxTest >= 1 ? spec.MaxTest : throw new InvalidFieldException($"{field}.max_test", $"must be positive, got {spec.MaxTest}")
            : null;
        return new TransferPlan(o, seeds, heldOut, maxTest);
    }

    /// <summary>The spec as it ran: every field explicit, counts as drawn.</summary>
    public static TransferSpec ToMessage(this TransferPlan plan, int heldOut, int testCount) => new()
    {
        Protocol = plan.Options.Protocol == CoreProtocol.Standard ? ProtocolMessage.Standard : ProtocolMessage.Kernel,
        Seeds = plan.Seeds,
        Width = plan.Options.Width,
        Epochs = plan.Options.Epochs,
        LearningRate = plan.Options.LearningRate,
        HeldOut = heldOut,
        EvalEvery = plan.Options.EvalEvery,
        Patience = plan.Options.Patience,
        MaxTest = testCount,
    };
}
