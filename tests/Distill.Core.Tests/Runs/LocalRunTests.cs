using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Output;
using Distill.Core.Preprocessing;
using Distill.Core.Runs;
using SkiaSharp;

namespace Distill.Core.Tests.Runs;

public sealed class LocalRunTests : TensorLeakCheck
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("distill-run-");

    private static KipOptions Options(int steps) => new()
    {
        SupportPerClass = 1,
        Steps = steps,
        LearningRate = 0.05,
        TargetBatch = 80,
        Initialization = SupportInitialization.Noise,
        EvaluateEvery = 0,
        CheckpointEvery = 4,
        Seed = 3,
    };

    [Fact]
    public void Execute_KipOnSyntheticData_LowersLossAndRaisesAccuracy()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(), new PreprocessingSpec());
        var losses = new List<double>();
        var evaluations = new List<double>();
        var options = Options(40) with { EvaluateEvery = 40 };

        var summary = LocalRun.Execute(data, options, Dir("kip"), resume: false, report: e =>
        {
            if (e is StepCompleted s) losses.Add(s.Loss);
            if (e is EvaluationCompleted ev) evaluations.Add(ev.Result.Accuracy);
        });

        Assert.Equal(40, losses.Count);
        Assert.True(losses.TakeLast(5).Average() < 0.5 * losses.Take(5).Average(), $"loss {losses[0]:G4} -> {losses[^1]:G4}");
        Assert.True(evaluations[^1] > evaluations[0] + 0.2, $"accuracy {evaluations[0]:P1} -> {evaluations[^1]:P1}");
        Assert.Equal(evaluations[^1], summary.TestAccuracy);
    }

    [Fact]
    public async Task ExecuteAsync_WithSnapshots_KeepsTheStartAndEachCheckpointWithinTheRetention()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(), new PreprocessingSpec());
        var folder = Path.Combine(Dir("snapshots"), LocalRun.SnapshotsFolder);
        var reported = new List<string?>();
        await LocalRun.ExecuteAsync(data, Options(20) with { CheckpointEvery = 2 }, Dir("snapshots"), resume: false, backend: null,
            report: e => { if (e is CheckpointWritten c) reported.Add(c.SnapshotPath); }, CancellationToken.None, new SnapshotPolicy(folder, Retention: 4));

        Assert.Equal(10, reported.Count);
        Assert.All(reported, path => Assert.StartsWith(folder, path));
        var kept = LocalRun.SnapshotSteps(folder);
        Assert.Equal(4, kept.Count);
        Assert.Equal((0L, 20L), (kept[0], kept[^1]));
        // The last snapshot is the finished set; the first is the start, before any step.
        var (last, _) = SafetensorsFile.Read(Path.Combine(folder, LocalRun.SnapshotFileName(20)));
        var (distilled, metadata) = SafetensorsFile.Read(Path.Combine(Dir("snapshots"), LocalRun.DistilledFile));
        Assert.Equal(distilled["images_pixels"].Data, last["images_pixels"].Data);
        var (first, firstMetadata) = SafetensorsFile.Read(Path.Combine(folder, LocalRun.SnapshotFileName(0)));
        Assert.Equal("0", firstMetadata["distill.step"]);
        Assert.NotEqual(first["images"].Data, last["images"].Data);
        Assert.Equal(metadata["distill.class_names"], firstMetadata["distill.class_names"]);
    }

    [Fact]
    public void Execute_WithoutSnapshotPolicy_WritesNoSnapshots()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(), new PreprocessingSpec());
        LocalRun.Execute(data, Options(4), Dir("plain"), resume: false);
        Assert.False(Directory.Exists(Path.Combine(Dir("plain"), LocalRun.SnapshotsFolder)));
    }

    [Fact]
    public void Execute_ResumedAfterInterruption_EndsWithTheUninterruptedSupportSet()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(), new PreprocessingSpec());
        LocalRun.Execute(data, Options(10), Dir("straight"), resume: false);

        // Stop after step 6 (checkpoints exist at 4 and, on cancellation, at 6), then resume.
        using var cancel = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => LocalRun.Execute(data, Options(10), Dir("resumed"), resume: false,
            report: e => { if (e is StepCompleted { Step: 6 }) cancel.Cancel(); }, cancellation: cancel.Token));
        long resumedFrom = -1;
        LocalRun.Execute(data, Options(10), Dir("resumed"), resume: true, report: e => { if (e is RunStarted s) resumedFrom = s.FromStep; });

        Assert.Equal(6, resumedFrom);
        using var straight = KipState.Load(Path.Combine(Dir("straight"), LocalRun.CheckpointFile));
        using var resumed = KipState.Load(Path.Combine(Dir("resumed"), LocalRun.CheckpointFile));
        Assert.Equal(10, resumed.Step);
        // Same seed, same per-step batches, same arithmetic: bit-identical.
        Assert.Equal(TensorAssert.ToArray(straight.SupportImages), TensorAssert.ToArray(resumed.SupportImages));
        Assert.Equal(TensorAssert.ToArray(straight.SupportLabels), TensorAssert.ToArray(resumed.SupportLabels));
    }

    [Fact]
    public void Execute_ResumeWithOtherOptions_IsRefusedNamingTheCheckpoint()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(), new PreprocessingSpec());
        LocalRun.Execute(data, Options(4), Dir("a"), resume: false);
        var error = Assert.Throws<ArgumentException>(() => LocalRun.Execute(data, Options(8) with { LearningRate = 0.1 }, Dir("a"), resume: true));
        Assert.Contains("other options", error.Message);
    }

    [Fact]
    public void Execute_Outputs_SafetensorsGridAndSummaryAreReadable()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(channels: 3, size: 5), new PreprocessingSpec(Zca: true));
        var summary = LocalRun.Execute(data, Options(3), Dir("out"), resume: false);

        var (tensors, metadata) = SafetensorsFile.Read(summary.Outputs["distilled"]);
        Assert.Equal(new long[] { 4, 3, 5, 5 }, tensors["images"].Shape);
        Assert.Equal(new long[] { 4, 3, 5, 5 }, tensors["images_pixels"].Shape);
        Assert.Equal(new long[] { 4, 4 }, tensors["labels"].Shape);
        Assert.Equal("true", metadata["preprocessing.zca"]);
        Assert.Equal("Ntk", metadata["kernel.kind"], ignoreCase: true);

        using var grid = SKBitmap.Decode(summary.Outputs["grid"]);
        Assert.NotNull(grid);
        Assert.True(grid.Height > grid.Width / 2, "one row per class");
        Assert.Contains("\"test_accuracy\"", File.ReadAllText(summary.Outputs["summary"]));
    }

    [Fact]
    public void Execute_LabelSolve_BeatsCenteredOneHotLabelsOnTheSameSupport()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(noise: 0.6), new PreprocessingSpec());
        var options = Options(0) with { Initialization = SupportInitialization.Real, SupportPerClass = 3 };
        var plain = LocalRun.Execute(data, options, Dir("plain"), resume: false);
        var solved = LocalRun.Execute(data, options with { Method = DistillationMethod.LabelSolve }, Dir("ls"), resume: false);
        Assert.True(solved.TestMse < plain.TestMse, $"LS test MSE {solved.TestMse:G4} vs one-hot {plain.TestMse:G4}");
    }

    [Fact]
    public void Execute_LabelSolve_ReportsTheSolveAndOneEvaluationAsTheirRowsComplete()
    {
        using var data = PreparedDataset.Prepare(SyntheticImages.Create(), new PreprocessingSpec());
        var events = new List<RunEvent>();
        var options = Options(0) with { Initialization = SupportInitialization.Real, Method = DistillationMethod.LabelSolve, BlockRows = 50 };

        var summary = LocalRun.Execute(data, options, Dir("ls-progress"), resume: false, report: events.Add);

        // 240 train and 160 test images in blocks of 50; the evaluation's rows come before its result, and it runs once.
        var phases = events.OfType<PhaseProgress>().ToList();
        Assert.Equal([50L, 100, 150, 200, 240], phases.Where(p => p.Phase == RunPhase.LabelSolve).Select(p => p.Done));
        Assert.Equal([50L, 100, 150, 160], phases.Where(p => p.Phase == RunPhase.Evaluation).Select(p => p.Done));
        Assert.All(phases.Where(p => p.Phase != RunPhase.SupportGram),
            p => Assert.Equal((0L, p.Phase == RunPhase.LabelSolve ? 240L : 160L), (p.Step, p.Total)));
        // The support's own Gram matrix twice, in the Label Solve and in the evaluation, to all its image pairs.
        long pairs = summary.SupportSize * (summary.SupportSize + 1L) / 2;
        Assert.Equal(2, phases.Count(p => p.Phase == RunPhase.SupportGram && p.Done == pairs && p.Total == pairs));
        var evaluation = Assert.Single(events.OfType<EvaluationCompleted>());
        Assert.True(events.IndexOf(phases[^1]) < events.IndexOf(evaluation));
        Assert.Equal(evaluation.Result.Accuracy, summary.TestAccuracy);
    }

    private string Dir(string name) => Path.Combine(_directory.FullName, name);

    public override void Dispose()
    {
        _directory.Delete(recursive: true);
        base.Dispose();
    }
}
