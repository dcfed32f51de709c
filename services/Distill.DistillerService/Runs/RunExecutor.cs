using Distill.Adapters.Conversions;
using Distill.Core.Data;
using Distill.Core.FeaturePool;
using Distill.Core.Runs;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Datasets;
using Distill.DistillerService.Kernels;
using Distill.Protos.Distiller.V1;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Options;
using CorePhaseProgress = Distill.Core.Runs.PhaseProgress;
using CoreRunEvent = Distill.Core.Runs.RunEvent;
using CoreRunPhase = Distill.Core.Runs.RunPhase;
using PhaseProgress = Distill.Protos.Distiller.V1.PhaseProgress;
using RunEvent = Distill.Protos.Distiller.V1.RunEvent;
using RunPhase = Distill.Protos.Distiller.V1.RunPhase;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Computes one run: the engine's own loop (<see cref="LocalRun"/>, or <see cref="FeaturePoolRun"/>
/// for a feature-pool run) over kernel services, from its latest checkpoint, keeping snapshots,
/// with each engine event turned into the run's progress and events. The dataset is held on the kernel services while it runs.
/// </summary>
public sealed class RunExecutor(RunLifecycle lifecycle, RunStore store, DatasetCache datasets, KernelServicePool pool,
    IOptions<DistillerOptions> options, TimeProvider time, ILogger<RunExecutor> logger)
{
    /// <summary>Runs to the end; returns the message of the run's SUCCEEDED state.</summary>
    public async Task<string> ExecuteAsync(string id, CancellationToken cancellation)
    {
        var run = lifecycle.Get(id);
        var kip = RunSpecs.ToOptions(run.Spec);
        using var lease = await datasets.AcquireAsync(run.Spec, cancellation);
        var data = lease.Data;
        // A convolutional kernel reads images of one shape: fail here, naming the field, not on every service.
        kip.Kernel.CheckImages(DatasetCache.ImageShape(data), "spec.kernel");
        var reference = DatasetCache.Reference(run.Spec);
        await using var hold = pool.Hold(reference);
        // A feature-pool run's exact evaluations score its fixed test subset, as the command line's do.
        var testRows = run.Spec.FeaturePool is { } spec ? FeaturePoolRun.TestRows(data, spec.TestSubset, run.Spec.Seed) : null;
        var backend = new RemoteKipBackend(pool, reference, kip.Kernel, kip.Regularization, data.TrainImages.shape[0], data.TestImages.shape[0], DatasetCache.ImageShape(data),
            run.Name, available => OnAvailability(id, available), TimeSpan.FromSeconds(options.Value.ProbeIntervalSeconds), time, logger, testRows);
        await backend.PrepareAsync(cancellation);
        var folder = store.RunFolder(id);
        var snapshots = new SnapshotPolicy(Path.Combine(folder, LocalRun.SnapshotsFolder), options.Value.SnapshotRetention);
        if (run.Spec.FeaturePool is not null)
            return await ExecutePoolAsync(id, run, data, reference, backend, kip.CheckpointEvery, folder, snapshots, cancellation);
        var summary = await LocalRun.ExecuteAsync(data, kip, folder, resume: true, backend, e => OnEvent(id, e), cancellation, snapshots);
        return $"finished: test accuracy {summary.TestAccuracy:P2} after {summary.Steps} steps";
    }

    /// <summary>A feature-pool run: the pool's networks on the kernel services, the exact kernel's evaluations through <paramref name="exact"/>.</summary>
    private async Task<string> ExecutePoolAsync(string id, Run run, PreparedDataset data, DatasetReference reference, RemoteKipBackend exact,
        long checkpointEvery, string folder, SnapshotPolicy snapshots, CancellationToken cancellation)
    {
        var pooled = RunSpecs.ToPoolOptions(run.Spec);
        var poolBackend = new RemoteFeaturePoolBackend(pool, reference, data, pooled, DatasetCache.ImageShape(data), run.Name,
            available => OnAvailability(id, available), options.Value, time, logger);
        var result = await FeaturePoolRun.ExecuteAsync(data, pooled, folder, new FeaturePoolRunSettings
        {
            Resume = true, CheckpointEvery = checkpointEvery, HeldOutTest = false, Backend = poolBackend,
            EvaluateExact = exact.EvaluateAsync, Snapshots = snapshots, Report = e => OnEvent(id, e),
        }, message => logger.LogInformation("Run {Id}: {Message}", id, message), cancellation);
        var chosen = pooled.ValidateEvery > 0
            ? $"the set of step {result.ChosenStep} (held-out validation {result.ChosenValidationAccuracy:P2})"
            : "the last step's set";
        return $"finished: test accuracy {result.Final.ExactAccuracy:P2} with {chosen}, after {result.Steps} steps";
    }

    /// <summary>PAUSED while no kernel service answers and RUNNING again after; never from any other state.</summary>
    private void OnAvailability(string id, bool available)
    {
        if (available)
            lifecycle.TryMove(id, RunState.Running, "a kernel service is reachable again", from: [RunState.Paused]);
        else
            lifecycle.TryMove(id, RunState.Paused, "no kernel service reachable; waiting for one to return", from: [RunState.Running]);
    }

    private void OnEvent(string id, CoreRunEvent e)
    {
        switch (e)
        {
            case RunStarted started:
                var message = started.Resumed ? $"resumed from step {started.FromStep}" : "started";
                lifecycle.Update(id, r => r.StateMessage = message,
                    new RunEvent { State = new StateChanged { State = RunState.Running, Message = message } }, persist: true);
                break;
            case CheckpointRejected rejected:
                logger.LogWarning("Run {Id}: checkpoint {File} is unusable ({Reason}); trying the one before it", id, rejected.File, rejected.Reason);
                lifecycle.Update(id, _ => { },
                    new RunEvent { State = new StateChanged { State = RunState.Running, Message = $"checkpoint {rejected.File} is unusable ({rejected.Reason}); trying the one before it" } },
                    persist: false);
                break;
            case StepCompleted step:
                lifecycle.Update(id, r => { r.Step = step.Step; r.LastLoss = step.Loss; r.StepsPerSecond = step.StepsPerSecond; },
                    new RunEvent { Progress = new StepProgress { Step = step.Step, TotalSteps = step.TotalSteps, Loss = step.Loss, StepsPerSecond = step.StepsPerSecond } },
                    persist: step.Step % 10 == 0);
                break;
            case EvaluationCompleted evaluation:
                lifecycle.Update(id, r =>
                {
                    r.TestAccuracy = evaluation.Result.Accuracy;
                    r.BestTestAccuracy = r.HasBestTestAccuracy ? Math.Max(r.BestTestAccuracy, evaluation.Result.Accuracy) : evaluation.Result.Accuracy;
                }, new RunEvent { Evaluation = new EvaluationDone { Step = evaluation.Step, TestAccuracy = evaluation.Result.Accuracy, TestMse = evaluation.Result.Mse } },
                    persist: true);
                break;
            case CorePhaseProgress phase:
                lifecycle.Update(id, _ => { }, new RunEvent
                {
                    Phase = new PhaseProgress
                    {
                        Phase = phase.Phase switch
                        {
                            CoreRunPhase.LabelSolve => RunPhase.LabelSolve,
                            CoreRunPhase.FeaturePoolSetup => RunPhase.FeaturePoolSetup,
                            CoreRunPhase.SupportGram => RunPhase.SupportGram,
                            _ => RunPhase.Evaluation,
                        },
                        Step = phase.Step, Done = phase.Done, Total = phase.Total, Elapsed = Duration.FromTimeSpan(phase.Elapsed),
                    },
                }, persist: false);
                break;
            case CheckpointWritten checkpoint:
                lifecycle.Update(id, r => { r.CheckpointStep = checkpoint.Step; r.Step = checkpoint.Step; },
                    new RunEvent
                    {
                        Checkpoint = new CheckpointDone
                        {
                            Step = checkpoint.Step,
                            Snapshot = checkpoint.SnapshotPath is null ? "" : RunNames.SnapshotName(id, checkpoint.Step),
                        },
                    }, persist: true);
                break;
        }
    }
}
