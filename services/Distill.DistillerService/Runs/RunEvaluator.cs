using Distill.Adapters.Clients;
using Distill.Adapters.Conversions;
using Distill.Core.Checkpoints;
using Distill.Core.Errors;
using Distill.Core.Output;
using Distill.Core.Runs;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Datasets;
using Distill.DistillerService.Kernels;
using Distill.DistillerService.Snapshots;
using Distill.Protos.Distiller.V1;
using KernelSpecMessage = Distill.Protos.Kernel.V1.KernelSpec;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;

namespace Distill.DistillerService.Runs;

/// <summary>
/// KRR accuracy of a run's support set (its latest checkpoint, or a snapshot) under any
/// kernel. It reads files and calls kernel services with a backend that has no say over
/// the run: an evaluation never changes a run's state, and fails with UNAVAILABLE when no
/// kernel service answers.
/// </summary>
public sealed class RunEvaluator(RunStore store, RunSnapshots snapshots, DatasetCache datasets, KernelServicePool pool,
    IOptions<DistillerOptions> options, TimeProvider time, ILogger<RunEvaluator> logger)
{
    public async Task<EvaluateRunResponse> EvaluateAsync(Run run, KernelSpecMessage? kernelMessage, long? step, CancellationToken cancellation)
    {
        var id = RunNames.Id(run.Name);
        var kernel = kernelMessage is null ? RunSpecs.Kernel(run.Spec.Kernel) : RunSpecs.Kernel(kernelMessage, "kernel");
        var (images, labels, at) = step is { } requested ? FromSnapshot(snapshots.Require(id, requested), requested) : FromCheckpoint(run);
        using (images)
        using (labels)
        {
            using var lease = await datasets.AcquireAsync(run.Spec, cancellation);
            var data = lease.Data;
            kernel.CheckImages(DatasetCache.ImageShape(data), kernelMessage is null ? "spec.kernel" : "kernel");
            var reference = DatasetCache.Reference(run.Spec);
            await using var hold = pool.Hold(reference);
            var backend = new RemoteKipBackend(pool, reference, kernel, RunSpecs.ToOptions(run.Spec).Regularization, data.TrainImages.shape[0],
                DatasetCache.ImageShape(data), runName: null, availabilityChanged: null, TimeSpan.FromSeconds(options.Value.ProbeIntervalSeconds), time, logger);
            Core.Evaluation.EvaluationResult result;
            try
            {
                result = await backend.EvaluateAsync(images, labels, cancellation);
            }
            catch (KernelServiceException e) when (e.InnerException is global::Grpc.Core.RpcException inner)
            {
                // The kernel service's own status, with a message that names it.
                throw new global::Grpc.Core.RpcException(new global::Grpc.Core.Status(inner.StatusCode, e.Message));
            }
            return new EvaluateRunResponse { TestAccuracy = result.Accuracy, TestMse = result.Mse, Step = at, Kernel = kernel.ToMessage() };
        }
    }

    private (Tensor Images, Tensor Labels, long Step) FromCheckpoint(Run run)
    {
        // The newest checkpoint that verifies, as a resume would take it.
        using var state = CheckpointFiles.LoadNewestGood(store.RunFolder(RunNames.Id(run.Name)))
            ?? throw new StateConflictException(ErrorReasons.NoCheckpointYet, run.Name, $"{run.Name} has no checkpoint to evaluate yet");
        return (state.SupportImages.clone(), state.SupportLabels.clone(), state.Step);
    }

    /// <summary>A snapshot's float32 images and labels as the engine's float64 N x D and N x classes.</summary>
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
