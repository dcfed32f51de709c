using System.Diagnostics;
using Distill.Core.Transfer;
using Distill.DistillerService.Datasets;
using Distill.Protos.Distiller.V1;
using TransferResultMessage = Distill.Protos.Distiller.V1.TransferResult;
using TransferSeedMessage = Distill.Protos.Distiller.V1.TransferSeedResult;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Transfer accuracy of a run's support set: finite ConvNet-3 networks trained on it in this
/// process, one per seed, scored on the run dataset's test split. Training takes the CPU
/// for minutes, so evaluations run one at a time and later ones wait; a caller that goes
/// away stops its training. Never changes the run.
/// </summary>
public sealed class RunTransferEvaluator(RunSupportSets supportSets, DatasetCache datasets, ILogger<RunTransferEvaluator> logger) : IDisposable
{
    // The split of held-out training images, the same for every set scored.
    private const int HeldOutSeed = 0;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    public async Task<EvaluateRunResponse> EvaluateAsync(Run run, TransferSpec spec, long? step, CancellationToken cancellation)
    {
        var plan = spec.ToPlan();
        var (images, labels, at) = supportSets.Load(run, step);
        using (images)
        using (labels)
        {
            using var lease = await datasets.AcquireAsync(run.Spec, cancellation);
            var data = lease.Data;
            var (_, heldOutIndex) = ClassBalancedSplit.Draw(data.TrainLabels, data.ClassCount, 0, plan.HeldOut, HeldOutSeed);
            using var sets = TransferSets.For(data, heldOutIndex, plan.MaxTest);
            var trainer = new TransferTrainer(plan.Options, data.Preprocessor.Channels, data.Preprocessor.Height, data.Preprocessor.Width, data.ClassCount);

            await _oneAtATime.WaitAsync(cancellation);
            try
            {
                logger.LogInformation("Transfer evaluation of {Run} at step {Step}: {Seeds} networks, {Protocol} protocol, width {Width}, {Epochs} epochs",
                    run.Name, at, plan.Seeds, plan.Options.Protocol, plan.Options.Width, plan.Options.Epochs);
                var watch = Stopwatch.StartNew();
                var result = await Task.Run(() => trainer.Run(Enumerable.Range(0, plan.Seeds).Select(s => (long)s), images, labels, sets.HeldOut, sets.Test,
                    s => logger.LogInformation("Transfer evaluation of {Run}: seed {Seed} test accuracy {Accuracy:F4} after {Epochs} epochs", run.Name, s.Seed, s.TestAccuracy, s.Epochs),
                    cancellation), cancellation);
                var transfer = new TransferResultMessage
                {
                    TestAccuracyStd = result.Std,
                    Spec = plan.ToMessage(heldOutIndex.Length, sets.Test.Count),
                    TestCount = sets.Test.Count,
                    Seconds = watch.Elapsed.TotalSeconds,
                };
                transfer.Seeds.AddRange(result.Seeds.Select(s => new TransferSeedMessage
                {
                    Seed = s.Seed, TestAccuracy = s.TestAccuracy, Epochs = s.Epochs, BestEpoch = s.BestEpoch,
                }));
                return new EvaluateRunResponse { TestAccuracy = result.Mean, Step = at, Transfer = transfer };
            }
            finally
            {
                _oneAtATime.Release();
            }
        }
    }

    public void Dispose() => _oneAtATime.Dispose();
}
