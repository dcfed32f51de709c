using Distill.Core.Checkpoints;
using Distill.Core.Errors;
using Distill.Core.Output;
using Distill.DistillerService.Snapshots;
using Distill.Protos.Distiller.V1;
using static TorchSharp.torch;

namespace Distill.DistillerService.Runs;

/// <summary>
/// A run's support set as the engine's float64 N x D images and N x classes labels: at a snapshot,
/// or at its newest good checkpoint (a feature-pool run's newest snapshot, written with each checkpoint).
/// </summary>
public sealed class RunSupportSets(RunStore store, RunSnapshots snapshots)
{
    /// <param name="step">A snapshot's step; null: the newest checkpoint that verifies, as a resume would take it.</param>
    public (Tensor Images, Tensor Labels, long Step) Load(Run run, long? step) =>
        step is { } requested ? FromSnapshot(snapshots.Require(RunNames.Id(run.Name), requested), requested) : FromCheckpoint(run);

    private (Tensor Images, Tensor Labels, long Step) FromCheckpoint(Run run)
    {
        // A feature-pool run writes a snapshot of the set its kernel sees with every checkpoint.
        if (run.Spec.FeaturePool is not null)
            return snapshots.Steps(RunNames.Id(run.Name)) is [.., var newest]
                ? FromSnapshot(snapshots.Require(RunNames.Id(run.Name), newest), newest)
                : throw new StateConflictException(ErrorReasons.NoCheckpointYet, run.Name, $"{run.Name} has no snapshot to evaluate yet");
        using var state = CheckpointFiles.LoadNewestGood(store.RunFolder(RunNames.Id(run.Name)))
            ?? throw new StateConflictException(ErrorReasons.NoCheckpointYet, run.Name, $"{run.Name} has no checkpoint to evaluate yet");
        return (state.SupportImages.clone(), state.SupportLabels.clone(), state.Step);
    }

    private static (Tensor Images, Tensor Labels, long Step) FromSnapshot(string path, long step)
    {
        var (tensors, _) = SafetensorsFile.Read(path);
        using var scope = NewDisposeScope();
        var images = tensors["images"];
        var labels = tensors["labels"];
        var x = tensor(images.ToFloats(), device: Core.Runtime.TorchRuntime.TorchDevice).reshape(images.Shape[0], -1).to_type(ScalarType.Float64);
        var y = tensor(labels.ToFloats(), device: Core.Runtime.TorchRuntime.TorchDevice).reshape(labels.Shape[0], labels.Shape[1]).to_type(ScalarType.Float64);
        return (x.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope(), step);
    }
}
