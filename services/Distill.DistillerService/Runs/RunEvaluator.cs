using Distill.Adapters.Clients;
using Distill.Adapters.Conversions;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Datasets;
using Distill.DistillerService.Kernels;
using Distill.Protos.Distiller.V1;
using KernelSpecMessage = Distill.Protos.Kernel.V1.KernelSpec;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Runs;

/// <summary>
/// KRR accuracy of a run's support set (its latest checkpoint, or a snapshot) under any
/// kernel. It reads files and calls kernel services with a backend that has no say over
/// the run: an evaluation never changes a run's state, and fails with UNAVAILABLE when no
/// kernel service answers.
/// </summary>
public sealed class RunEvaluator(RunSupportSets supportSets, DatasetCache datasets, KernelServicePool pool,
    IOptions<DistillerOptions> options, TimeProvider time, ILogger<RunEvaluator> logger)
{
    public async Task<EvaluateRunResponse> EvaluateAsync(Run run, KernelSpecMessage? kernelMessage, long? step, CancellationToken cancellation)
    {
        var kernel = kernelMessage is null ? RunSpecs.Kernel(run.Spec.Kernel) : RunSpecs.Kernel(kernelMessage, "kernel");
        var (images, labels, at) = supportSets.Load(run, step);
        using (images)
        using (labels)
        {
            using var lease = await datasets.AcquireAsync(run.Spec, cancellation);
            var data = lease.Data;
            kernel.CheckImages(DatasetCache.ImageShape(data), kernelMessage is null ? "spec.kernel" : "kernel");
            var reference = DatasetCache.Reference(run.Spec);
            await using var hold = pool.Hold(reference);
            var backend = new RemoteKipBackend(pool, reference, kernel, RunSpecs.ToOptions(run.Spec).Regularization, data.TrainImages.shape[0],
                data.TestImages.shape[0], DatasetCache.ImageShape(data), runName: null, availabilityChanged: null, TimeSpan.FromSeconds(options.Value.ProbeIntervalSeconds), time, logger);
            Core.Evaluation.EvaluationResult result;
            try
            {
                result = await backend.EvaluateAsync(images, labels, progress: null, cancellation);
            }
            catch (KernelServiceException e) when (e.InnerException is global::Grpc.Core.RpcException inner)
            {
                // The kernel service's own status, with a message that names it.
                throw new global::Grpc.Core.RpcException(new global::Grpc.Core.Status(inner.StatusCode, e.Message));
            }
            return new EvaluateRunResponse { TestAccuracy = result.Accuracy, TestMse = result.Mse, Step = at, Kernel = kernel.ToMessage() };
        }
    }
}
