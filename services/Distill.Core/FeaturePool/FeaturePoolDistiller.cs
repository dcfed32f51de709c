using System.Diagnostics;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Errors;
using Distill.Core.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>What one pooled KIP step did.</summary>
public sealed record PoolStepReport(long Step, double Loss, double TargetAccuracy, TimeSpan Elapsed);

/// <summary>
/// KIP on random ConvNet features (see <see cref="FeaturePoolOptions"/>). Set-up computes the
/// target subset's features under every pool network once (no gradient, a bounded buffer) and
/// the validation images' features under the held-out networks; each step then runs only the
/// support images through the k sampled networks (with gradient), builds K_ss and K_ts from
/// features and takes an Adam step on the support images (and labels, and Platt's kappa).
/// Deterministic for given options and data.
/// </summary>
public sealed class FeaturePoolDistiller : IDisposable
{
    private readonly PreparedDataset _data;
    private readonly RandomFeatureConvKernel _pool;
    private readonly RandomFeatureConvKernel _heldOut;
    private readonly List<List<(Tensor Weight, Tensor Bias)>> _poolNetworks = [];
    private readonly List<List<(Tensor Weight, Tensor Bias)>> _heldOutNetworks = [];
    private readonly NetworkFeatureBuffer? _targets;
    private readonly NetworkFeatureBuffer? _validation;
    private readonly TargetSampler _batchSampler;
    private readonly long[] _subset;
    private readonly AdamOptimizer _imageOptimizer;
    private readonly AdamOptimizer? _labelOptimizer;
    private readonly AdamOptimizer? _scaleOptimizer;
    private readonly Tensor? _logScale;
    private Tensor? _bestImages, _bestLabels;

    public FeaturePoolDistiller(PreparedDataset data, FeaturePoolOptions options, Action<string>? log = null)
    {
        Options = options.Validate();
        options.Kernel.CheckImageShape(data.Source.Train.Channels, data.Source.Train.Height, data.Source.Train.Width);
        _data = data;
        _pool = options.PoolNetworks();
        _heldOut = options.HeldOut();
        var device = data.TrainImages.device;
        var type = options.FeatureType;

        // Target subset (class-balanced) and held-out validation images from the rest of the train split.
        var all = new TargetSampler(data.TrainLabels, data.ClassCount, options.Seed);
        _subset = all.Sample(Math.Min(options.TargetSubset, data.TrainLabels.Length), step: -2, stream: 2);
        Array.Sort(_subset);
        var inSubset = new HashSet<long>(_subset);
        var rest = Enumerable.Range(0, data.TrainLabels.Length).Where(i => !inSubset.Contains(i)).ToArray();
        var validationRows = new long[0];
        if (options.ValidateEvery > 0 && rest.Length > 0)
        {
            var restSampler = new TargetSampler(rest.Select(i => data.TrainLabels[i]).ToArray(), data.ClassCount, options.Seed);
            validationRows = restSampler.Sample(options.ValidationPerClass * data.ClassCount, step: -3, stream: 2).Select(j => (long)rest[j]).ToArray();
        }
        ValidationCount = validationRows.Length;
        _batchSampler = new TargetSampler(_subset.Select(i => data.TrainLabels[i]).ToArray(), data.ClassCount, options.Seed);

        var watch = Stopwatch.StartNew();
        try
        {
            if (!options.FreshNetworks)
            {
                long bytes = NetworkFeatureBuffer.SizeOf(options.PoolSize, _subset.Length, _pool.FeatureCount, type);
                log?.Invoke($"feature pool: {options.PoolSize} networks of width {options.Width}, {_subset.Length} target images x {_pool.FeatureCount} features: buffer {bytes / (1 << 20)} MiB ({type})");
                _targets = ComputeBuffer(_pool, options.PoolSize, _subset, "target", log);
                for (int m = 0; m < options.PoolSize; m++) _poolNetworks.Add(Detached(_pool.DrawNetwork(m, type, device)));
            }
            if (validationRows.Length > 0 && options.HeldOutNetworks > 0)
            {
                log?.Invoke($"validation: {validationRows.Length} held-out training images x {options.HeldOutNetworks} held-out networks: buffer {NetworkFeatureBuffer.SizeOf(options.HeldOutNetworks, validationRows.Length, _heldOut.FeatureCount, type) / (1 << 20)} MiB");
                _validation = ComputeBuffer(_heldOut, options.HeldOutNetworks, validationRows, "validation", log);
            }
            for (int m = 0; m < options.HeldOutNetworks; m++) _heldOutNetworks.Add(Detached(_heldOut.DrawNetwork(m, type, device)));
        }
        catch
        {
            DisposeNetworks();
            _targets?.Dispose();
            throw;
        }
        SetupSeconds = watch.Elapsed.TotalSeconds;
        BufferBytes = (_targets?.Bytes ?? 0) + (_validation?.Bytes ?? 0);

        (SupportImages, SupportClasses) = InitialSupport.Draw(data, options.SupportPerClass, options.Initialization, options.Seed);
        SupportLabels = CenteredOneHot.Encode(SupportClasses, data.ClassCount, device);
        _imageOptimizer = new AdamOptimizer(options.LearningRate, SupportImages);
        _labelOptimizer = options.LearnLabels ? new AdamOptimizer(options.LearningRate, SupportLabels) : null;
        if (options.Loss == PoolLoss.Platt)
        {
            _logScale = zeros(1, dtype: ScalarType.Float64, device: device);
            _scaleOptimizer = new AdamOptimizer(1e-2, _logScale);
        }
    }

    public FeaturePoolOptions Options { get; }
    public Tensor SupportImages { get; }
    public Tensor SupportLabels { get; }
    public int[] SupportClasses { get; }
    public long Step { get; private set; }
    public double SetupSeconds { get; }
    /// <summary>Bytes of the stored features (targets and validation).</summary>
    public long BufferBytes { get; }
    public int TargetCount => _subset.Length;
    /// <summary>The train-split rows of the target subset, in the order of the stored features.</summary>
    public IReadOnlyList<long> TargetRows => _subset;
    public int ValidationCount { get; }
    /// <summary>The step with the best held-out validation accuracy so far (0: the initial support), and that accuracy.</summary>
    public long BestStep { get; private set; } = -1;
    public double BestValidationAccuracy { get; private set; } = double.NegativeInfinity;
    public NetworkFeatureBuffer? TargetFeatures => _targets;

    /// <summary>The pool networks a step samples: k of P without replacement, a pure function of (seed, step).</summary>
    public int[] SampleNetworks(long step)
    {
        var random = new Random(TargetSampler.StreamSeed(Options.Seed, step, 3));
        var order = Enumerable.Range(0, Options.PoolSize).ToArray();
        for (int i = 0; i < Options.PoolSample; i++)
        {
            int j = random.Next(i, order.Length);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order.Take(Options.PoolSample).ToArray();
    }

    public PoolStepReport TakeStep()
    {
        var watch = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var type = Options.FeatureType;
        var device = SupportImages.device;
        List<Tensor> targetFeatures = [];
        List<List<(Tensor Weight, Tensor Bias)>> networks;
        Tensor targets;
        RandomFeatureConvKernel source = _pool;
        if (Options.FreshNetworks)
        {
            source = Options.FreshNetworksAt(Step);
            networks = Enumerable.Range(0, Options.PoolSample).Select(m => source.DrawNetwork(m, type, device)).ToList();
            var indices = tensor(_batchSampler.Sample(Options.TargetBatch, Step).Select(j => _subset[j]).ToArray(), device: device);
            var images = _data.TrainImages.index_select(0, indices).to_type(type);
            targets = _data.TrainTargets.index_select(0, indices);
            using (no_grad())
                foreach (var network in networks) targetFeatures.Add(source.NetworkFeatures(network, images));
        }
        else
        {
            var sampled = SampleNetworks(Step);
            networks = sampled.Select(m => _poolNetworks[m]).ToList();
            var rows = tensor(_batchSampler.Sample(Options.TargetBatch, Step), device: device);
            targets = _targets!.Targets.index_select(0, rows);
            foreach (var m in sampled) targetFeatures.Add(_targets.Rows(m, rows));
        }

        var xs = SupportImages.detach().requires_grad_(true);
        var ys = _labelOptimizer is not null ? SupportLabels.detach().requires_grad_(true) : SupportLabels;
        var logScale = _logScale?.detach().requires_grad_(true);
        var (kernelImages, kernelLabels) = Options.Mirror ? Mirrored(xs, ys) : (xs, ys);
        var xsFeatures = kernelImages.to_type(type);
        var supportFeatures = networks.Select(n => source.NetworkFeatures(n, xsFeatures)).ToList();
        var (loss, accuracy) = PooledKernel.Loss(Options.Kernel, supportFeatures, targetFeatures, kernelLabels, targets, Options.Loss, logScale, Options.Regularization);
        var inputs = new List<Tensor> { xs };
        if (_labelOptimizer is not null) inputs.Add(ys);
        if (logScale is not null) inputs.Add(logScale);
        var gradients = torch.autograd.grad([loss], inputs);
        double value = loss.item<double>();
        if (!double.IsFinite(value) || gradients.Any(g => !g.isfinite().all().item<bool>()))
            throw new DivergenceException(Step + 1, $"the loss or its gradient became {value} / non-finite at step {Step + 1}");
        _imageOptimizer.Step(SupportImages, gradients[0]);
        if (_labelOptimizer is not null) _labelOptimizer.Step(SupportLabels, gradients[1]);
        if (_logScale is not null) _scaleOptimizer!.Step(_logScale, gradients[^1]);
        Step++;
        return new PoolStepReport(Step, value, accuracy, watch.Elapsed);
    }

    /// <summary>
    /// KRR accuracy of the current support on the held-out training images under the held-out networks;
    /// remembers the support when it is the best so far (the set <see cref="RestoreBest"/> brings back).
    /// </summary>
    public double Validate()
    {
        if (_validation is null) throw new InvalidOperationException("no validation set (validate_every 0 or no held-out networks)");
        using var scope = NewDisposeScope();
        var (accuracy, _) = EvaluateHeldOut(_validation.Count, (start, length) =>
            Enumerable.Range(0, _validation.Networks).Select(m => _validation.Features[m].narrow(0, start, length)).ToList(), _validation.Targets);
        if (accuracy > BestValidationAccuracy)
        {
            BestValidationAccuracy = accuracy;
            BestStep = Step;
            _bestImages?.Dispose();
            _bestLabels?.Dispose();
            _bestImages = SupportImages.detach().clone().MoveToOuterDisposeScope();
            _bestLabels = SupportLabels.detach().clone().MoveToOuterDisposeScope();
        }
        return accuracy;
    }

    /// <summary>
    /// The support images (n x d) and labels as the kernel sees them: with <see cref="FeaturePoolOptions.Mirror"/>,
    /// 2n rows (<see cref="MirroredSupport"/>); otherwise the support itself. New tensors either way.
    /// </summary>
    public (Tensor Images, Tensor Labels) KernelSupport()
    {
        using var noGrad = no_grad();
        return Options.Mirror ? Mirrored(SupportImages, SupportLabels) : (SupportImages.clone(), SupportLabels.clone());
    }

    private (Tensor Images, Tensor Labels) Mirrored(Tensor images, Tensor labels)
    {
        var spec = Options.Kernel;
        return (MirroredSupport.Images(images, spec.ImageChannels, spec.ImageHeight, spec.ImageWidth), MirroredSupport.Labels(labels));
    }

    /// <summary>Copies of the tensors a checkpoint keeps, by name; <see cref="Restore"/> takes them back.</summary>
    public Dictionary<string, Tensor> Capture()
    {
        using var noGrad = no_grad();
        var tensors = new Dictionary<string, Tensor>
        {
            ["support_images"] = SupportImages.clone(),
            ["support_labels"] = SupportLabels.clone(),
            ["adam_images_m"] = _imageOptimizer.FirstMoment.clone(),
            ["adam_images_v"] = _imageOptimizer.SecondMoment.clone(),
        };
        if (_labelOptimizer is not null)
        {
            tensors["adam_labels_m"] = _labelOptimizer.FirstMoment.clone();
            tensors["adam_labels_v"] = _labelOptimizer.SecondMoment.clone();
        }
        if (_logScale is not null)
        {
            tensors["log_scale"] = _logScale.clone();
            tensors["adam_scale_m"] = _scaleOptimizer!.FirstMoment.clone();
            tensors["adam_scale_v"] = _scaleOptimizer.SecondMoment.clone();
        }
        if (_bestImages is not null)
        {
            tensors["best_images"] = _bestImages.clone();
            tensors["best_labels"] = _bestLabels!.clone();
        }
        return tensors;
    }

    /// <summary>Continues from a checkpoint of a run with the same options: the next step is the one after <paramref name="step"/>.</summary>
    public void Restore(IReadOnlyDictionary<string, Tensor> tensors, long step, long bestStep, double bestValidationAccuracy)
    {
        Tensor Get(string name) => tensors.TryGetValue(name, out var t) ? t : throw new InvalidDataException($"checkpoint lacks tensor '{name}'");
        using var noGrad = no_grad();
        SupportImages.copy_(Get("support_images"));
        SupportLabels.copy_(Get("support_labels"));
        // Each optimiser takes one step per KIP step.
        _imageOptimizer.Restore(Get("adam_images_m"), Get("adam_images_v"), step);
        _labelOptimizer?.Restore(Get("adam_labels_m"), Get("adam_labels_v"), step);
        if (_logScale is not null)
        {
            _logScale.copy_(Get("log_scale"));
            _scaleOptimizer!.Restore(Get("adam_scale_m"), Get("adam_scale_v"), step);
        }
        _bestImages?.Dispose();
        _bestLabels?.Dispose();
        (_bestImages, _bestLabels) = tensors.ContainsKey("best_images")
            ? (Get("best_images").to_type(SupportImages.dtype).clone(), Get("best_labels").to_type(SupportLabels.dtype).clone())
            : (null, null);
        Step = step;
        BestStep = bestStep;
        BestValidationAccuracy = bestValidationAccuracy;
    }

    /// <summary>Puts back the support set of <see cref="BestStep"/> (no-op when nothing was validated).</summary>
    public void RestoreBest()
    {
        if (_bestImages is null) return;
        using var noGrad = no_grad();
        SupportImages.copy_(_bestImages);
        SupportLabels.copy_(_bestLabels!);
    }

    /// <summary>KRR accuracy and MSE of the support on the given images (n x d) under the held-out networks, computed in blocks.</summary>
    public (double Accuracy, double Mse) EvaluateHeldOut(Tensor images, Tensor targets, int blockRows = 1000)
    {
        var type = Options.FeatureType;
        return EvaluateHeldOut(images.shape[0], (start, length) =>
        {
            var x = images.narrow(0, start, length).to_type(type);
            return _heldOutNetworks.Select(n => _heldOut.NetworkFeatures(n, x)).ToList();
        }, targets, blockRows);
    }

    private (double Accuracy, double Mse) EvaluateHeldOut(long count, Func<long, long, IReadOnlyList<Tensor>> queryFeatures, Tensor targets, int blockRows = 1000)
    {
        if (_heldOutNetworks.Count == 0) throw new InvalidOperationException("no held-out networks");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var (images, labels) = KernelSupport();
        var x = images.to_type(Options.FeatureType);
        var support = _heldOutNetworks.Select(n => _heldOut.NetworkFeatures(n, x)).ToList();
        return PooledKernel.Evaluate(Options.Kernel, support, labels, count, blockRows, queryFeatures, targets, Options.Regularization);
    }

    private NetworkFeatureBuffer ComputeBuffer(RandomFeatureConvKernel source, int networks, long[] rows, string what, Action<string>? log)
    {
        using var scope = NewDisposeScope();
        var index = tensor(rows, device: _data.TrainImages.device);
        var watch = Stopwatch.StartNew();
        var buffer = NetworkFeatureBuffer.Compute(source, networks, _data.TrainImages.index_select(0, index), _data.TrainTargets.index_select(0, index),
            rows.Select(i => _data.TrainLabels[i]).ToArray(), Options.FeatureType, Options.MaxBufferBytes,
            (done, total) =>
            {
                if (done == total || done % Math.Max(1, total / 8) == 0)
                    log?.Invoke($"{what} features: {done}/{total} networks ({watch.Elapsed.TotalSeconds:F0} s)");
            });
        buffer.Features.MoveToOuterDisposeScope();
        buffer.Targets.MoveToOuterDisposeScope();
        return buffer;
    }

    private static List<(Tensor Weight, Tensor Bias)> Detached(List<(Tensor Weight, Tensor Bias)> network)
    {
        foreach (var (w, b) in network) { w.MoveToOuterDisposeScope(); b.MoveToOuterDisposeScope(); }
        return network;
    }

    private void DisposeNetworks()
    {
        foreach (var network in _poolNetworks.Concat(_heldOutNetworks))
            foreach (var (w, b) in network) { w.Dispose(); b.Dispose(); }
    }

    public void Dispose()
    {
        DisposeNetworks();
        _targets?.Dispose();
        _validation?.Dispose();
        SupportImages.Dispose();
        SupportLabels.Dispose();
        _imageOptimizer.Dispose();
        _labelOptimizer?.Dispose();
        _scaleOptimizer?.Dispose();
        _logScale?.Dispose();
        _bestImages?.Dispose();
        _bestLabels?.Dispose();
    }
}
