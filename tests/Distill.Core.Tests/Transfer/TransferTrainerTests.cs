using Distill.Core.Transfer;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Transfer;

public class TransferTrainerTests : TensorLeakCheck
{
    private const int Channels = 3, Size = 8, Classes = 2;

    /// <summary>
    /// Two classes of constant-colour 3x8x8 images (class 0 reddish, class 1 bluish) with small
    /// per-image jitter: trivially separable. Returns NCHW float32 images, labels, centred one-hot targets.
    /// </summary>
    private static (Tensor Images, int[] Labels, Tensor Targets) ConstantColours(int perClass, int seed)
    {
        var random = new Random(seed);
        int n = perClass * Classes;
        var pixels = new float[n * Channels * Size * Size];
        var labels = new int[n];
        var targets = new float[n * Classes];
        for (int i = 0; i < n; i++)
        {
            int label = labels[i] = i % Classes;
            float[] colour = label == 0 ? [0.9f, 0.2f, 0.1f] : [0.1f, 0.3f, 0.9f];
            for (int c = 0; c < Channels; c++)
            {
                float value = colour[c] + (float)(0.1 * (random.NextDouble() - 0.5));
                for (int k = 0; k < Size * Size; k++) pixels[(i * Channels + c) * Size * Size + k] = value;
            }
            targets[i * Classes + label] = 0.5f;
            targets[i * Classes + 1 - label] = -0.5f;
        }
        return (tensor(pixels, [n, Channels, Size, Size]), labels, tensor(targets, [n, Classes]));
    }

    private static TransferOptions Small(TransferOptions options) => options with { Width = 8 };

    /// <summary>A trainer that declares the networks it will build (see TensorLeakCheck.AllowModuleParameters).</summary>
    private TransferTrainer Trainer(TransferOptions options, int networks)
    {
        AllowModuleParameters(networks * (options.Centering ? 2 : 1) * ConvNet3Tests.ParameterTensors(options.InstanceNorm));
        return new TransferTrainer(options, Channels, Size, Size, Classes);
    }

    [Theory]
    [InlineData(TransferProtocol.Standard)]
    [InlineData(TransferProtocol.Kernel)]
    public void Run_ConstantColourClasses_ClassifiesHeldOutCopiesPerfectly(TransferProtocol protocol)
    {
        var (images, _, targets) = ConstantColours(2, seed: 0);
        var (heldOut, heldOutLabels, _) = ConstantColours(10, seed: 1);
        var (test, testLabels, _) = ConstantColours(20, seed: 2);
        var options = Small(TransferOptions.For(protocol)) with { Epochs = 100, EvalEvery = protocol == TransferProtocol.Kernel ? 10 : 0 };
        var trainer = Trainer(options, networks: 2);

        var result = trainer.Run([0, 1], images, targets, new LabeledTensor(heldOut, heldOutLabels), new LabeledTensor(test, testLabels));

        Assert.Equal(2, result.Seeds.Count);
        // Separable by colour with a margin far above the jitter: every copy must be right.
        Assert.All(result.Seeds, s => Assert.Equal(1.0, s.TestAccuracy));
        Assert.Equal(1.0, result.Mean);
        Assert.Equal(0.0, result.Std);
    }

    [Theory]
    [InlineData(TransferProtocol.Standard)]
    [InlineData(TransferProtocol.Kernel)]
    public void Run_SameSeed_IdenticalResults(TransferProtocol protocol)
    {
        var (images, _, targets) = ConstantColours(3, seed: 0);
        var (test, testLabels, _) = ConstantColours(5, seed: 2);
        var (heldOutImages, heldOutLabels, _) = ConstantColours(4, seed: 1);
        var heldOut = new LabeledTensor(heldOutImages, heldOutLabels);
        var options = Small(TransferOptions.For(protocol)) with { Epochs = 20, EvalEvery = 5, BatchSize = 4 };
        var trainer = Trainer(options, networks: 2);

        var first = trainer.Run([3], images, targets, heldOut, new LabeledTensor(test, testLabels)).Seeds[0];
        var second = trainer.Run([3], images, targets, heldOut, new LabeledTensor(test, testLabels)).Seeds[0];

        // Same initialisation, same batch order, same arithmetic on the same threads: bit-identical.
        Assert.Equal(first.InitialLoss, second.InitialLoss);
        Assert.Equal(first.FinalLoss, second.FinalLoss);
        Assert.Equal(first.TestAccuracy, second.TestAccuracy);
        Assert.Equal(first.HeldOut, second.HeldOut);
        Assert.Equal(first.BestEpoch, second.BestEpoch);
    }

    [Theory]
    [InlineData(TransferProtocol.Standard)]
    [InlineData(TransferProtocol.Kernel)]
    public void Train_EitherLoss_ReducesTheTrainingLoss(TransferProtocol protocol)
    {
        var (images, _, targets) = ConstantColours(4, seed: 0);
        // No held-out set: the last network is kept, so the loss is the one training reached.
        var options = Small(TransferOptions.For(protocol)) with { Epochs = 30, EvalEvery = 0, LearningRate = 0.05 };
        var trainer = Trainer(options, networks: 1);

        using var network = trainer.Train(0, images, targets);

        Assert.Equal(30, network.Epochs);
        Assert.Equal(30, network.BestEpoch);
        // Thirty full-batch steps on a separable set: a drop of a tenth at least (at lr 0.01
        // both losses already fell by about 9%; at 0.05 the drop is several times that).
        Assert.True(network.FinalLoss < 0.9 * network.InitialLoss, $"loss {network.InitialLoss} -> {network.FinalLoss}");
    }

    [Fact]
    public void Train_WithHeldOut_RestoresTheBestHeldOutEpoch()
    {
        // Targets flipped against the held-out labels: fitting them drives held-out accuracy
        // down, so the kept epoch is an early evaluation rather than the last.
        var (images, _, trueTargets) = ConstantColours(3, seed: 0);
        var targets = trueTargets.neg();
        var (heldOut, heldOutLabels, _) = ConstantColours(6, seed: 1);
        var held = new LabeledTensor(heldOut, heldOutLabels);
        var options = Small(TransferOptions.Kernel()) with { Epochs = 40, EvalEvery = 4, Patience = 0, LearningRate = 0.05 };
        var trainer = Trainer(options, networks: 1);

        using var network = trainer.Train(5, images, targets, held);

        Assert.Equal(10, network.HeldOut.Count);
        var best = network.HeldOut.MaxBy(h => h.Accuracy); // MaxBy keeps the first of equals
        Assert.Equal(best.Epoch, network.BestEpoch);
        Assert.Equal(best.Accuracy, network.BestHeldOutAccuracy);
        // The network handed back is the one of that epoch: it scores exactly that again.
        Assert.Equal(best.Accuracy, network.Accuracy(held));
    }

    [Fact]
    public void Train_PatienceExhausted_StopsEarly()
    {
        var (images, _, targets) = ConstantColours(2, seed: 0);
        var (heldOut, heldOutLabels, _) = ConstantColours(4, seed: 1);
        // Held-out accuracy saturates (at 1, or at a plateau of this small slow network) long
        // before 500 epochs: two evaluations after the best one end training.
        var options = Small(TransferOptions.Kernel()) with { Epochs = 500, EvalEvery = 10, Patience = 2 };
        var trainer = Trainer(options, networks: 1);

        using var network = trainer.Train(0, images, targets, new LabeledTensor(heldOut, heldOutLabels));

        Assert.True(network.Epochs < 500, "training ran to the end");
        Assert.Equal(network.BestEpoch + 2 * 10, network.Epochs);
        Assert.Equal(network.Epochs / 10, network.HeldOut.Count);
    }

    [Fact]
    public void Train_Centering_StartsFromZeroOutput()
    {
        var (images, _, targets) = ConstantColours(2, seed: 0);
        var options = Small(TransferOptions.Kernel()) with { Epochs = 1, Centering = true, LabelScale = 4 };
        var trainer = Trainer(options, networks: 1);

        using var network = trainer.Train(0, images, targets);

        // Before any step f - f0 = 0, so the initial loss is 0.5 x the squared scaled targets summed over both classes: 0.5 (2^2 + 2^2).
        Assert.Equal(4.0, network.InitialLoss, 6);
    }

    [Fact]
    public void Options_Invalid_AreRefusedNamingTheSetting()
    {
        var e = Assert.Throws<ArgumentException>(() => new TransferTrainer(TransferOptions.Kernel() with { Epochs = 0 }, 3, 8, 8, 2));
        Assert.Contains("epochs", e.Message);
        Assert.Throws<ArgumentException>(() => new TransferTrainer(TransferOptions.Kernel() with { LabelScale = 0 }, 3, 8, 8, 2));
    }
}
