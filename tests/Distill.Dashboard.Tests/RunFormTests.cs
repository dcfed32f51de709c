using Distill.Client;
using Distill.Dashboard.Services;

namespace Distill.Dashboard.Tests;

public class RunFormTests
{
    private static readonly FeaturePoolSpecification Pool = new()
    {
        PoolSize = 128, PoolSample = 16, Width = 64, NetworkSeed = 5, TargetSubset = 10000, HeldOutNetworks = 8,
        ValidationPerClass = 100, ValidateEvery = 50, Loss = PoolLoss.Platt, Mirror = true, TestSubset = 2000,
    };

    /// <summary>A spec as the distiller returns it: every default filled in.</summary>
    internal static RunSpecification Filled(KernelSpecification kernel, FeaturePoolSpecification? pool = null) => new()
    {
        Dataset = "cifar10", Format = DatasetFormat.ImageFolder, Method = DistillationMethod.Kip, Kernel = kernel, SupportPerClass = 10, Steps = 800,
        LearningRate = pool is null ? 0.02 : 0.003, TargetBatch = pool is null ? 4000 : 2000, FixedLabels = true,
        Preprocessing = new PreprocessingSpecification(true, true, 0.1), Seed = 3, EvaluateEvery = 100, CheckpointEvery = 50, Regularization = 1e-6,
        Initialization = SupportInitialization.Real, FeaturePool = pool,
    };

    internal static RunSpecification PoolRun() =>
        Filled(KernelSpecification.ConvolutionalKernel(ConvolutionalNetwork.ConvNet3, 3, 32, 32, KernelKind.Nngp) with { WStd = Math.Sqrt(2), BStd = 0.1 }, Pool);

    public static TheoryData<RunSpecification> ServerSpecs() => new(
        Filled(new KernelSpecification(KernelSpecification.FullyConnected, KernelKind.Nngp, 3, 1.2, 0.05)),
        Filled(KernelSpecification.ConvolutionalKernel(ConvolutionalNetwork.Myrtle5, 3, 16, 24, KernelKind.Ntk, ConvolutionalReadout.GlobalAveragePool) with { WStd = 1.5, BStd = 0 }),
        Filled(KernelSpecification.RandomFeatureKernel(ConvolutionalNetwork.ConvNet, 1, 28, 28, 16, 128, 7) with { WStd = 1.4, BStd = 0.2 }),
        PoolRun());

    [Theory]
    [MemberData(nameof(ServerSpecs))]
    public void A_form_made_from_a_runs_spec_submits_that_spec(RunSpecification spec) =>
        Assert.Equal(spec, RunForm.FromSpec(spec).ToSpec());

    [Fact]
    public void A_feature_pool_takes_its_learning_rate_and_target_batch_unless_they_were_changed()
    {
        var form = new RunForm { Network = ConvolutionalNetwork.ConvNet3 };
        form.SetFeaturePool(true);
        Assert.Equal((0.003, 2000), (form.LearningRate, form.TargetBatch));
        form.SetFeaturePool(false);
        Assert.Equal((0.01, 5000), (form.LearningRate, form.TargetBatch));
        form.LearningRate = 0.02;
        form.SetFeaturePool(true);
        Assert.Equal((0.02, 2000), (form.LearningRate, form.TargetBatch));
        Assert.NotNull(form.ToSpec().FeaturePool);
        form.Network = null;
        Assert.Null(form.ToSpec().FeaturePool);  // a fully connected kernel has no pool
    }
}
