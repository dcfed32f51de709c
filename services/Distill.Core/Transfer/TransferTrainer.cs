using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Distill.Core.Transfer;

/// <summary>Images to score on: N images as NCHW or as N feature rows of C*H*W values (any floating type), and their classes.</summary>
public sealed record LabeledTensor(Tensor Images, int[] Labels)
{
    public int Count => Labels.Length;
}

/// <summary>One seed's network: its test accuracy, and how training went.</summary>
/// <param name="Epochs">Epochs trained (fewer than asked when early stopping ended the run).</param>
/// <param name="BestEpoch">The epoch whose network was kept: the best held-out one, or the last.</param>
/// <param name="HeldOut">Held-out accuracy after each evaluated epoch (empty without a held-out set).</param>
/// <param name="InitialLoss">Training loss on the whole support set at initialisation.</param>
/// <param name="FinalLoss">Training loss of the kept network.</param>
public sealed record TransferSeedResult(
    long Seed, double TestAccuracy, int Epochs, int BestEpoch, double? BestHeldOutAccuracy,
    IReadOnlyList<(int Epoch, double Accuracy)> HeldOut, double InitialLoss, double FinalLoss);

/// <summary>Test accuracies over seeds; the standard deviation is the population one (numpy's default).</summary>
public sealed record TransferResult(IReadOnlyList<TransferSeedResult> Seeds)
{
    public double Mean => Seeds.Average(s => s.TestAccuracy);
    public double Std => Math.Sqrt(Seeds.Average(s => (s.TestAccuracy - Mean) * (s.TestAccuracy - Mean)));
}

/// <summary>
/// A trained network (restored to the kept epoch) with, under centring, a frozen copy of its
/// initialisation; predictions are f(x) - f_0(x) then. Owns both modules.
/// </summary>
public sealed class TrainedNetwork : IDisposable
{
    internal TrainedNetwork(ConvNet3 network, ConvNet3? initial)
    {
        Network = network;
        Initial = initial;
    }

    public ConvNet3 Network { get; }
    public ConvNet3? Initial { get; }
    public int Epochs { get; internal set; }
    public int BestEpoch { get; internal set; }
    public double? BestHeldOutAccuracy { get; internal set; }
    public List<(int Epoch, double Accuracy)> HeldOut { get; } = [];
    public double InitialLoss { get; internal set; }
    public double FinalLoss { get; internal set; }

    /// <summary>Outputs for a batch of NCHW images (or feature rows, reshaped).</summary>
    public Tensor Predict(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = images.reshape(images.shape[0], Network.Channels, Network.Height, Network.Width);
        var output = Network.call(x);
        if (Initial is not null) output = output.sub(Initial.call(x));
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>Fraction of <paramref name="set"/> classified correctly, in batches of <paramref name="batchSize"/> without gradients.</summary>
    public double Accuracy(LabeledTensor set, int batchSize = 500)
    {
        if (set.Images.shape[0] != set.Count)
            throw new ArgumentException($"{set.Images.shape[0]} images but {set.Count} labels");
        if (set.Count == 0) throw new ArgumentException("no images to score");
        using var noGrad = no_grad();
        Network.eval();
        Initial?.eval();
        long correct = 0;
        for (int start = 0; start < set.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            int length = Math.Min(batchSize, set.Count - start);
            var predicted = Predict(set.Images.narrow(0, start, length)).argmax(1).cpu().data<long>().ToArray();
            for (int i = 0; i < length; i++)
                if (predicted[i] == set.Labels[start + i]) correct++;
        }
        return (double)correct / set.Count;
    }

    public void Dispose()
    {
        Network.Dispose();
        Initial?.Dispose();
    }
}

/// <summary>
/// Trains ConvNet-3 networks on a support set (distilled or real) under a
/// <see cref="TransferOptions"/> protocol and scores them on a test set, one network per seed.
/// A seed fixes the initialisation (<see cref="ConvNet3.Initialize"/>) and the batch order,
/// so one seed gives one result. Held-out data for early stopping must come from the
/// training split, never the test split; the caller chooses it.
/// </summary>
public sealed class TransferTrainer
{
    private readonly TransferOptions _options;
    private readonly int _channels, _height, _width, _classes;

    public TransferTrainer(TransferOptions options, int channels, int height, int width, int classes)
    {
        options.Validate();
        _options = options;
        _channels = channels;
        _height = height;
        _width = width;
        _classes = classes;
    }

    public TransferOptions Options => _options;

    /// <summary>One network per seed, each scored on <paramref name="test"/>; <paramref name="onSeed"/> hears of each as it ends.</summary>
    /// <param name="images">Support images, NCHW or feature rows.</param>
    /// <param name="targets">Support labels [n, classes]: the regression targets under MSE, their argmax under cross-entropy.</param>
    public TransferResult Run(IEnumerable<long> seeds, Tensor images, Tensor targets, LabeledTensor? heldOut, LabeledTensor test,
        Action<TransferSeedResult>? onSeed = null, CancellationToken cancellation = default)
    {
        var results = new List<TransferSeedResult>();
        foreach (var seed in seeds)
        {
            using var network = Train(seed, images, targets, heldOut, cancellation);
            var result = new TransferSeedResult(seed, network.Accuracy(test, _options.EvalBatchSize), network.Epochs, network.BestEpoch,
                network.BestHeldOutAccuracy, network.HeldOut.ToArray(), network.InitialLoss, network.FinalLoss);
            results.Add(result);
            onSeed?.Invoke(result);
        }
        if (results.Count == 0) throw new ArgumentException("no seeds given");
        return new TransferResult(results);
    }

    /// <summary>
    /// Trains one network from <paramref name="seed"/>. With a held-out set and
    /// <see cref="TransferOptions.EvalEvery"/> &gt; 0 it is scored every so many epochs and the
    /// best-scoring epoch's parameters (the earliest among equals) are restored at the end;
    /// <see cref="TransferOptions.Patience"/> evaluations without improvement end training early.
    /// </summary>
    public TrainedNetwork Train(long seed, Tensor images, Tensor targets, LabeledTensor? heldOut = null, CancellationToken cancellation = default)
    {
        long n = images.shape[0];
        if (n < 1) throw new ArgumentException("the support set is empty");
        if (targets.dim() != 2 || targets.shape[0] != n || targets.shape[1] != _classes)
            throw new ArgumentException($"targets must be [{n}, {_classes}], got [{string.Join(", ", targets.shape)}]");
        if (images.numel() != n * _channels * _height * _width)
            throw new ArgumentException($"images must be {n} x {_channels}x{_height}x{_width}, got [{string.Join(", ", images.shape)}]");

        var device = images.device;
        var o = _options;
        var network = NewNetwork(seed, device);
        var initial = o.Centering ? NewNetwork(seed, device) : null;
        if (initial is not null)
            foreach (var p in initial.parameters()) p.requires_grad = false;
        var trained = new TrainedNetwork(network, initial);
        var owned = new List<Tensor>();
        List<Tensor>? best = null;
        try
        {
            Tensor x, y;
            using (NewDisposeScope())
            {
                using Scalar labelScale = o.LabelScale;
                x = Own(owned, images.reshape(n, _channels, _height, _width).to_type(ScalarType.Float32).detach());
                y = o.CrossEntropy
                    ? Own(owned, targets.argmax(1).to_type(ScalarType.Int64))
                    : Own(owned, targets.to_type(ScalarType.Float32).mul(labelScale));
            }

            using var sgd = new MomentumSgd(network.parameters(), o.LearningRate, o.Momentum, o.WeightDecay);
            var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
            var order = Enumerable.Range(0, (int)n).ToArray();
            trained.InitialLoss = FullLoss(trained, x, y);
            int sinceBest = 0;
            int epoch = 0;
            while (epoch < o.Epochs)
            {
                cancellation.ThrowIfCancellationRequested();
                epoch++;
                network.train();
                if (n > o.BatchSize) random.Shuffle(order);
                for (int start = 0; start < n; start += o.BatchSize)
                {
                    using var scope = NewDisposeScope();
                    int length = (int)Math.Min(o.BatchSize, n - start);
                    Tensor xb, yb;
                    if (length == n) { xb = x; yb = y; }
                    else
                    {
                        using var index = tensor(order.AsSpan(start, length).ToArray().Select(i => (long)i).ToArray(), device: device);
                        xb = x.index_select(0, index);
                        yb = y.index_select(0, index);
                    }
                    network.zero_grad();
                    var loss = Loss(trained, xb, yb);
                    loss.backward();
                    sgd.Step();
                }
                if (o.DecayAtHalf && epoch == Math.Max(1, o.Epochs / 2)) sgd.LearningRate *= 0.1;

                if (heldOut is not null && o.EvalEvery > 0 && (epoch % o.EvalEvery == 0 || epoch == o.Epochs))
                {
                    double accuracy = trained.Accuracy(heldOut, o.EvalBatchSize);
                    trained.HeldOut.Add((epoch, accuracy));
                    if (trained.BestHeldOutAccuracy is not { } b || accuracy > b)
                    {
                        trained.BestHeldOutAccuracy = accuracy;
                        trained.BestEpoch = epoch;
                        sinceBest = 0;
                        Release(best);
                        best = Snapshot(network);
                    }
                    else if (o.Patience > 0 && ++sinceBest >= o.Patience)
                        break;
                }
            }
            trained.Epochs = epoch;
            if (best is not null) Restore(network, best);
            else trained.BestEpoch = epoch;
            trained.FinalLoss = FullLoss(trained, x, y);
            return trained;
        }
        catch
        {
            trained.Dispose();
            throw;
        }
        finally
        {
            Release(best);
            Release(owned);
        }
    }

    private ConvNet3 NewNetwork(long seed, Device device)
    {
        var network = new ConvNet3(_channels, _height, _width, _classes, _options.Width, _options.InstanceNorm);
        network.Initialize(seed, _options.KernelInitialization ? (_options.InitWStd, _options.InitBStd) : null);
        network.to(device);
        return network;
    }

    private static readonly Scalar Half = 0.5;

    private Tensor Loss(TrainedNetwork trained, Tensor x, Tensor y)
    {
        var output = trained.Predict(x);
        // MSE as in KIP: 0.5 ||f(x) - y||^2 summed over classes, averaged over images.
        return _options.CrossEntropy ? nn.functional.cross_entropy(output, y) : output.sub(y).square().sum(1).mean().mul(Half);
    }

    /// <summary>Mean training loss over the whole support set, without gradients.</summary>
    private double FullLoss(TrainedNetwork trained, Tensor x, Tensor y)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        trained.Network.eval();
        return Loss(trained, x, y).to_type(ScalarType.Float64).cpu().item<double>();
    }

    private static Tensor Own(List<Tensor> owned, Tensor t)
    {
        t.DetachFromDisposeScope();
        owned.Add(t);
        return t;
    }

    private static List<Tensor> Snapshot(ConvNet3 network)
    {
        using var noGrad = no_grad();
        return network.parameters().Select(p => { var c = p.detach().clone(); c.DetachFromDisposeScope(); return c; }).ToList();
    }

    private static void Restore(ConvNet3 network, List<Tensor> saved)
    {
        using var noGrad = no_grad();
        foreach (var (p, s) in network.parameters().Zip(saved)) p.copy_(s);
    }

    private static void Release(List<Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors) t.Dispose();
        tensors.Clear();
    }
}
