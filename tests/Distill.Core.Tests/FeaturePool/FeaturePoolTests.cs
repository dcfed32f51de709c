using Distill.Core.Data;
using Distill.Core.Errors;
using Distill.Core.FeaturePool;
using Distill.Core.Kernels;
using Distill.Core.Preprocessing;
using Distill.Core.Regression;
using Distill.Core.Runs;
using Distill.Core.Tests.Kernels;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.FeaturePool;

/// <summary>KIP on a fixed pool of random ConvNet3 networks, on tiny 3 x 8 x 8 images.</summary>
public class FeaturePoolTests : TensorLeakCheck
{
    private static readonly Scalar Tenth = 0.1;
    private static readonly KernelSpec ConvNet3 = new(KernelKind.Nngp, Architecture: KernelArchitecture.ConvNet3,
        ImageChannels: 3, ImageHeight: 8, ImageWidth: 8);

    private static Tensor Images(int n, int seed) =>
        randn(n, 3 * 8 * 8, dtype: ScalarType.Float64, generator: new Generator((ulong)seed));

    private static List<Tensor> Features(RandomFeatureConvKernel source, IEnumerable<int> networks, Tensor x) =>
        networks.Select(m => source.NetworkFeatures(source.DrawNetwork(m, x.dtype, x.device), x)).ToList();

    [Fact]
    public void Gram_OfTheSampledNetworks_EqualsTheRandomFeatureKernelOfThoseNetworks()
    {
        var x1 = Images(5, 1);
        var x2 = Images(4, 2);
        var pool = new RandomFeatureConvKernel(ConvNet3, networks: 6, width: 8, seed: 7);

        // All of the pool: the random-feature kernel with the same networks and seed.
        var all = Enumerable.Range(0, 6).ToArray();
        TensorAssert.Close(pool.Compute(x1, x2), PooledKernel.Gram(ConvNet3, Features(pool, all, x1), Features(pool, all, x2)), 1e-12, "whole pool");
        // A sample {0, 1, 2}: networks 0..2 of the same seed are the kernel with 3 networks.
        var three = new RandomFeatureConvKernel(ConvNet3, networks: 3, width: 8, seed: 7);
        TensorAssert.Close(three.ComputeSymmetric(x1), PooledKernel.Gram(ConvNet3, Features(pool, [0, 1, 2], x1), Features(pool, [0, 1, 2], x1)), 1e-12, "sample of 3");
        // The order of the sampled networks does not matter.
        TensorAssert.Close(three.Compute(x1, x2), PooledKernel.Gram(ConvNet3, Features(pool, [2, 0, 1], x1), Features(pool, [2, 0, 1], x2)), 1e-12, "reordered");
    }

    [Theory]
    [InlineData(PoolLoss.Mse)]
    [InlineData(PoolLoss.Platt)]
    public void StepOverPoolSplitByNetworks_EqualsTheStepOverTheWholePool(PoolLoss loss)
    {
        // As kernel services split a pool: networks 0..2 in one part, 3..5 in the other, each over every target.
        var source = new RandomFeatureConvKernel(ConvNet3, networks: 6, width: 8, seed: 7);
        var targets = Images(12, 1);
        int[] classes = Enumerable.Range(0, 12).Select(i => i % 3).ToArray();
        var targetLabels = CenteredOneHotOf(classes, 3);
        using var whole = FeaturePoolShard.Compute(source, targets, targetLabels, ScalarType.Float64, long.MaxValue);
        using var first = FeaturePoolShard.Compute(source, targets, targetLabels, ScalarType.Float64, long.MaxValue, first: 0, count: 3);
        using var second = FeaturePoolShard.Compute(source, targets, targetLabels, ScalarType.Float64, long.MaxValue, first: 3, count: 3);
        var support = Images(3, 2);
        var labels = CenteredOneHotOf([0, 1, 2], 3).add(Images(1, 3).narrow(1, 0, 9).reshape(3, 3).mul(Tenth), One);
        int[] sampled = [4, 0, 5];
        long[] rows = [1, 3, 4, 8, 11];
        var request = new PoolStepRequest(support, labels, 0.3, sampled, rows, 5, WantLabelGradient: true, Step: 0);

        using var expected = whole.Step(request, loss, 1e-2);

        using var low = first.Products(support, [0], rows);
        using var high = second.Products(support, [4, 5], rows);
        using var step = PooledKernel.StepFromProducts(ConvNet3, sampled.Length, source.FeatureCount,
            low.SupportProducts.add(high.SupportProducts, One), low.TargetProducts.add(high.TargetProducts, One),
            request, targetLabels.index_select(0, tensor(rows)), loss, 1e-2);
        // One part through the graph it kept, the other computing its forward pass again: the same either way.
        var gradient = low.Gradient(step.SupportCotangent, step.TargetCotangent)
            .add(second.ProductsGradient(support, [4, 5], rows, step.SupportCotangent, step.TargetCotangent), One);
        TensorAssert.Close(high.Gradient(step.SupportCotangent, step.TargetCotangent),
            second.ProductsGradient(support, [4, 5], rows, step.SupportCotangent, step.TargetCotangent), 1e-12, "kept graph vs recomputed");

        Assert.Equal(expected.Loss, step.Loss, 12);
        Assert.Equal(expected.Correct, step.Correct);
        Assert.Equal(expected.ScaleGradient, step.ScaleGradient, 12);
        TensorAssert.Close(expected.SupportGradient, gradient, 1e-10, "support gradient");
        TensorAssert.Close(expected.LabelGradient!, step.LabelGradient!, 1e-10, "label gradient");
        Assert.True(gradient.abs().max().item<double>() > 1e-6, "a zero gradient would make the comparison empty");
        Assert.Throws<InvalidFieldException>(() => first.Products(support, [3], rows));
    }

    [Theory]
    [InlineData(PoolLoss.Mse)]
    [InlineData(PoolLoss.Platt)]
    public void Loss_GradientWithRespectToSupportImages_MatchesFiniteDifferences(PoolLoss loss)
    {
        var pool = new RandomFeatureConvKernel(ConvNet3, networks: 4, width: 8, seed: 3);
        int[] sampled = [3, 1];
        var xs = Images(2, 4);
        var xt = Images(12, 5);
        var ys = CenteredOneHotOf([0, 2], 3).add(Images(1, 6).narrow(1, 0, 6).reshape(2, 3).mul(Tenth), One);
        var yt = CenteredOneHotOf(Enumerable.Range(0, 12).Select(i => i % 3).ToArray(), 3);
        var logScale = tensor(new[] { 0.3 }, dtype: ScalarType.Float64);
        List<Tensor> targets;
        using (no_grad()) targets = Features(pool, sampled, xt);
        double Loss(Tensor x)
        {
            using var scope = NewDisposeScope();
            return PooledKernel.Loss(ConvNet3, Features(pool, sampled, x), targets, ys, yt, loss, logScale, 1e-2).Loss.item<double>();
        }

        var leaf = xs.clone().requires_grad_(true);
        var (value, _) = PooledKernel.Loss(ConvNet3, Features(pool, sampled, leaf), targets, ys, yt, loss, logScale, 1e-2);
        var gradient = torch.autograd.grad([value], [leaf])[0];

        Assert.Equal(Loss(xs), value.item<double>(), 12);
        TensorAssert.Close(KernelGradientTests.FiniteDifference(Loss, xs), gradient, 1e-5, "dL/dXs");
    }

    [Fact]
    public void TargetFeatures_PrecomputedOnce_EqualRecomputedOnes()
    {
        using var data = Tiny();
        using var distiller = new FeaturePoolDistiller(data, Options(data) with { ValidateEvery = 0 });
        var buffer = distiller.TargetFeatures!;
        Assert.Equal(4, buffer.Networks);
        Assert.Equal(distiller.TargetCount, buffer.Count);
        Assert.Equal(NetworkFeatureBuffer.SizeOf(4, distiller.TargetCount, buffer.FeatureCount, ScalarType.Float64), buffer.Bytes);

        var rows = tensor(distiller.TargetRows.ToArray());
        var images = data.TrainImages.index_select(0, rows);
        var pool = distiller.Options.PoolNetworks();
        for (int m = 0; m < 4; m++)
            TensorAssert.Close(pool.NetworkFeatures(pool.DrawNetwork(m, ScalarType.Float64, images.device), images), buffer.Features[m], 1e-12, $"network {m}");
        TensorAssert.Close(data.TrainTargets.index_select(0, rows), buffer.Targets, 0, "targets");
    }

    [Fact]
    public void TargetFeatures_OverTheBound_AreRefusedBeforeComputing()
    {
        using var data = Tiny();
        var e = Assert.Throws<LimitExceededException>(() => new FeaturePoolDistiller(data, Options(data) with { MaxBufferBytes = 1000 }));
        Assert.Contains("MiB", e.Message);
    }

    [Theory]
    [InlineData(false, PoolLoss.Mse, false)]
    [InlineData(false, PoolLoss.Platt, false)]
    [InlineData(false, PoolLoss.Mse, true)]
    public void Steps_OnASeparableProblem_LowerTheLoss(bool freshNetworks, PoolLoss loss, bool mirror)
    {
        using var data = Tiny();
        // Pool of 4, all sampled, every target each step: the same objective every step.
        var options = Options(data) with { FreshNetworks = freshNetworks, Loss = loss, LearningRate = 0.05, ValidateEvery = 0, Mirror = mirror };
        using var distiller = new FeaturePoolDistiller(data, options);
        var losses = Enumerable.Range(0, 20).Select(_ => distiller.TakeStep().Loss).ToArray();
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(losses[^1] < 0.8 * losses[0], $"loss {losses[0]:G4} -> {losses[^1]:G4}: {string.Join(", ", losses.Select(l => l.ToString("G3")))}");
    }

    [Fact]
    public void Steps_WithFreshNetworks_LowerTheHeldOutNetworksTrainingError()
    {
        // RFAD's mode: other networks every step, so the step losses are noisy; the held-out
        // networks' KRR error on the training images measures progress instead.
        using var data = Tiny();
        var options = Options(data) with { FreshNetworks = true, PoolSample = 2, LearningRate = 0.05, ValidateEvery = 0, HeldOutNetworks = 4 };
        using var distiller = new FeaturePoolDistiller(data, options);
        var before = distiller.EvaluateHeldOut(data.TrainImages, data.TrainTargets).Mse;
        for (int i = 0; i < 30; i++) Assert.True(double.IsFinite(distiller.TakeStep().Loss));
        var after = distiller.EvaluateHeldOut(data.TrainImages, data.TrainTargets).Mse;
        Assert.True(after < before, $"held-out training MSE {before:G4} -> {after:G4}");
    }

    [Fact]
    public void Run_ChoosesTheStepByHeldOutValidation_AndWritesTheOutputs()
    {
        using var data = Tiny();
        var folder = Path.Combine(Path.GetTempPath(), $"distill-pool-{Guid.NewGuid():N}");
        try
        {
            var options = Options(data) with { Steps = 6, ValidateEvery = 2, HeldOutNetworks = 2, ValidationPerClass = 5, LearningRate = 0.05 };
            var lines = new List<string>();
            var summary = FeaturePoolRun.Execute(data, options, folder, testSubset: 20, lines.Add);
            Assert.Equal(6, summary.Steps);
            Assert.Contains(summary.ChosenStep, new long[] { 0, 2, 4, 6 });
            Assert.Equal(20, summary.TestSubset);
            Assert.InRange(summary.Final.ExactAccuracy, 0, 1);
            Assert.InRange(summary.Baseline.HeldOutAccuracy, 0, 1);
            Assert.True(File.Exists(Path.Combine(folder, "distilled.safetensors")));
            Assert.Contains("\"chosen_step\"", File.ReadAllText(Path.Combine(folder, "summary.json")));
            Assert.Contains(lines, l => l.Contains("buffer"));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Run_WithoutAnExactBaseline_ScoresOnlyTheDistilledSetExactly_AndResumesWithTheHeldOutBaseline()
    {
        using var data = Tiny();
        var folder = Path.Combine(Path.GetTempPath(), $"distill-pool-{Guid.NewGuid():N}");
        try
        {
            var options = Options(data) with { Steps = 4, ValidateEvery = 2, HeldOutNetworks = 2, ValidationPerClass = 5 };
            var lines = new List<string>();
            var summary = FeaturePoolRun.Execute(data, options, folder, testSubset: 20, lines.Add, exactBaseline: false);
            Assert.True(double.IsNaN(summary.Baseline.ExactAccuracy));
            Assert.InRange(summary.Baseline.HeldOutAccuracy, 0, 1);
            Assert.InRange(summary.Final.ExactAccuracy, 0, 1);
            Assert.Single(lines, l => l.Contains("NNGP test_accuracy"));
            Assert.Contains(lines, l => l.StartsWith("baseline") && l.Contains("no exact evaluation"));

            // The NaN goes through the checkpoint: a resumed run reports the same held-out baseline.
            var resumed = FeaturePoolRun.Execute(data, options, folder, testSubset: 20, _ => { }, resume: true, exactBaseline: false);
            Assert.True(double.IsNaN(resumed.Baseline.ExactAccuracy));
            Assert.Equal(summary.Baseline.HeldOutAccuracy, resumed.Baseline.HeldOutAccuracy);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void MirroredSupport_ExactKernelPredictsTheSameForAnImageAndItsMirror()
    {
        // ConvNet3's NNGP is unchanged when both images are mirrored, so KRR on a support set
        // closed under mirroring cannot tell an image from its mirror; on the bare support it can.
        var kernel = ConvNet3.Create();
        var support = Images(3, 11);
        var labels = CenteredOneHotOf([0, 1, 2], 3);
        var query = Images(4, 12);
        var mirroredQuery = MirroredSupport.Images(query, 3, 8, 8).narrow(0, 4, 4);
        TensorAssert.Close(query.reshape(4, 3, 8, 8).select(3, 0), mirroredQuery.reshape(4, 3, 8, 8).select(3, 7), 0, "column 0 becomes column 7");

        Tensor Predict(Tensor s, Tensor y, Tensor q) => KernelRidgeRegression.FitAndPredict(kernel, s, y, 1e-3, q).Predictions!;
        var mirrored = MirroredSupport.Images(support, 3, 8, 8);
        var mirroredLabels = MirroredSupport.Labels(labels);
        Assert.Equal([6L, 192L], mirrored.shape);
        TensorAssert.Close(Predict(mirrored, mirroredLabels, query), Predict(mirrored, mirroredLabels, mirroredQuery), 1e-10, "mirrored support");
        var bare = Predict(support, labels, query).sub(Predict(support, labels, mirroredQuery)).abs().max().item<double>();
        Assert.True(bare > 1e-4, $"without mirroring, predictions of an image and its mirror differ ({bare:G3})");
    }

    [Fact]
    public void Run_WithMirroring_ScoresAndWritesTheImagesAndTheirMirrors()
    {
        using var data = Tiny();
        var folder = Path.Combine(Path.GetTempPath(), $"distill-pool-{Guid.NewGuid():N}");
        try
        {
            var options = Options(data) with { Steps = 2, ValidateEvery = 1, HeldOutNetworks = 2, ValidationPerClass = 5, Mirror = true };
            var summary = FeaturePoolRun.Execute(data, options, folder, testSubset: 20, _ => { });
            Assert.Equal(8, summary.SupportSize);
            var (tensors, _) = Distill.Core.Output.SafetensorsFile.Read(Path.Combine(folder, "distilled.safetensors"));
            Assert.Equal([8L, 3L, 8L, 8L], tensors["images"].Shape);
            var images = tensor(tensors["images"].ToFloats()).reshape(8, 3, 8, 8);
            TensorAssert.Close(images.narrow(0, 0, 4).flip(3), images.narrow(0, 4, 4), 0, "the second half mirrors the first");
            var labels = tensor(tensors["labels"].ToFloats()).reshape(8, 4);
            TensorAssert.Close(labels.narrow(0, 0, 4), labels.narrow(0, 4, 4), 0, "labels shared");
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData(PoolLoss.Mse)]
    [InlineData(PoolLoss.Platt)]
    public void Run_StoppedAndResumed_EndsWithTheSetOfAnUninterruptedRun(PoolLoss loss)
    {
        using var data = Tiny();
        var straight = Path.Combine(Path.GetTempPath(), $"distill-pool-{Guid.NewGuid():N}");
        var resumed = Path.Combine(Path.GetTempPath(), $"distill-pool-{Guid.NewGuid():N}");
        try
        {
            var options = Options(data) with { Steps = 6, ValidateEvery = 2, HeldOutNetworks = 2, ValidationPerClass = 5, LearningRate = 0.05, Loss = loss };
            var expected = FeaturePoolRun.Execute(data, options, straight, testSubset: 20, _ => { });

            // Cancelled after its third step (the log line of step 3 comes after its checkpoint),
            // then continued by a fresh call that must not redo the baseline.
            using var cancel = new CancellationTokenSource();
            Assert.Throws<OperationCanceledException>(() => FeaturePoolRun.Execute(data, options, resumed, testSubset: 20,
                line => { if (line.StartsWith("step 3/", StringComparison.Ordinal)) cancel.Cancel(); }, cancel.Token));
            var lines = new List<string>();
            var actual = FeaturePoolRun.Execute(data, options, resumed, testSubset: 20, lines.Add, resume: true);

            Assert.Contains(lines, l => l.StartsWith("resumed from step 3", StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.StartsWith("baseline", StringComparison.Ordinal));
            Assert.Equal(expected.ChosenStep, actual.ChosenStep);
            Assert.Equal(expected.Baseline, actual.Baseline);
            Assert.Equal(expected.Final, actual.Final);
            Assert.Equal(expected.Curve.Select(p => (p.Step, p.Loss, p.Validation)), actual.Curve.Select(p => (p.Step, p.Loss, p.Validation)));
            var a = Distill.Core.Output.SafetensorsFile.Read(Path.Combine(straight, "distilled.safetensors")).Tensors;
            var b = Distill.Core.Output.SafetensorsFile.Read(Path.Combine(resumed, "distilled.safetensors")).Tensors;
            Assert.Equal(a["images"].ToFloats(), b["images"].ToFloats());
            Assert.Equal(a["labels"].ToFloats(), b["labels"].ToFloats());

            // Other options would change the run's course: refused, naming what the checkpoint holds.
            var e = Assert.Throws<ArgumentException>(() => FeaturePoolRun.Execute(data, options with { Seed = 2 }, resumed, testSubset: 20, _ => { }, resume: true));
            Assert.Contains("other options", e.Message);
        }
        finally
        {
            foreach (var folder in new[] { straight, resumed })
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task Run_DyingBeforeItsFirstPeriodicCheckpoint_ResumesWithoutRedoingTheBaseline()
    {
        using var data = Tiny();
        var folder = Path.Combine(Path.GetTempPath(), $"distill-pool-{Guid.NewGuid():N}");
        try
        {
            var options = Options(data) with { Steps = 6, ValidateEvery = 0, HeldOutNetworks = 2, ValidationPerClass = 5, LearningRate = 0.05 };
            // A failure that is not a cancellation writes no checkpoint, as a killed process would not.
            var lines = new List<string>();
            var dying = new FeaturePoolRunSettings
            {
                TestSubset = 20, CheckpointEvery = 100,
                Report = e => { if (e is StepCompleted { Step: 2 }) throw new InvalidOperationException("killed"); },
            };
            await Assert.ThrowsAsync<InvalidOperationException>(() => FeaturePoolRun.ExecuteAsync(data, options, folder, dying, lines.Add));
            var baseline = Assert.Single(lines, l => l.StartsWith("baseline", StringComparison.Ordinal));

            var resumedLines = new List<string>();
            var summary = FeaturePoolRun.Execute(data, options, folder, testSubset: 20, resumedLines.Add, resume: true);
            Assert.Contains(resumedLines, l => l.StartsWith("resumed from step 0", StringComparison.Ordinal));
            Assert.DoesNotContain(resumedLines, l => l.StartsWith("baseline", StringComparison.Ordinal));
            Assert.Contains(summary.Baseline.ExactAccuracy.ToString("F4", System.Globalization.CultureInfo.InvariantCulture), baseline);
            Assert.Equal(6, summary.Steps);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    private static FeaturePoolOptions Options(PreparedDataset data) => new()
    {
        Kernel = ConvNet3,
        PoolSize = 4, PoolSample = 4, Width = 8,
        TargetSubset = 40, TargetBatch = 40,
        HeldOutNetworks = 2, ValidationPerClass = 5,
        FeatureType = ScalarType.Float64,
        Steps = 10, Regularization = 1e-3, Seed = 1,
    };

    private static PreparedDataset Tiny() => PreparedDataset.Prepare(
        SyntheticImages.Create(classes: 4, trainPerClass: 20, testPerClass: 10, channels: 3, size: 8, noise: 0.2, seed: 2), new PreprocessingSpec());

    private static Tensor CenteredOneHotOf(int[] labels, int classes) =>
        Distill.Core.Distillation.CenteredOneHot.Encode(labels, classes, CPU);
}
