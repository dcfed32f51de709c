using System.Diagnostics;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Errors;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>What one pooled KIP step did.</summary>
public sealed record PoolStepReport(long Step, double Loss, double TargetAccuracy, TimeSpan Elapsed);

/// <summary>
/// KIP on random ConvNet features (see <see cref="FeaturePoolOptions"/>). Set-up has the backend
/// compute the target subset's features under every pool network once (no gradient, a bounded
/// buffer; in this process or split by networks over kernel services) and computes the validation images'
/// features under the held-out networks here; each step the backend runs only the support images
/// through the k sampled networks (with gradient), builds K_ss and K_ts from features and returns
/// the gradients, and this class takes an Adam step on the support images (and labels, and
/// Platt's kappa). Deterministic for given options and data.
/// </summary>
public sealed class FeaturePoolDistiller : IDisposable
{
    private readonly PreparedDataset _data;
    private readonly IFeaturePoolBackend _backend;
    private readonly RandomFeatureConvKernel _heldOut;
    private readonly List<List<(Tensor Weight, Tensor Bias)>> _heldOutNetworks = [];
    private readonly NetworkFeatureBuffer? _validation;
    private readonly Stopwatch _setup;
    private readonly TargetSampler _batchSampler;
    private readonly long[] _subset;
    private readonly AdamOptimizer _imageOptimizer;
    private readonly AdamOptimizer? _labelOptimizer;
    private readonly AdamOptimizer? _scaleOptimizer;
    private readonly Tensor? _logScale;
    private Tensor? _bestImages, _bestLabels;

    /// <summary>A distiller whose pool is in this process, computed here (synchronously).</summary>
    public FeaturePoolDistiller(PreparedDataset data, FeaturePoolOptions options, Action<string>? log = null)
        : this(data, options, new LocalFeaturePoolBackend(data, options), log)
    {
        try
        {
            PrepareAsync(log, networksDone: null, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>A distiller over any backend, which it owns; <see cref="PrepareAsync"/> must finish before the first step.</summary>
    public static async Task<FeaturePoolDistiller> CreateAsync(PreparedDataset data, FeaturePoolOptions options, IFeaturePoolBackend backend,
        Action<string>? log, Action<RowsDone>? networksDone, CancellationToken cancellation)
    {
        var distiller = new FeaturePoolDistiller(data, options, backend, log);
        try
        {
            await distiller.PrepareAsync(log, networksDone, cancellation);
            return distiller;
        }
        catch
        {
            distiller.Dispose();
            throw;
        }
    }

    private async Task PrepareAsync(Action<string>? log, Action<RowsDone>? networksDone, CancellationToken cancellation)
    {
        await _backend.PrepareAsync(_subset, log, networksDone, cancellation);
        SetupSeconds = _setup.Elapsed.TotalSeconds;
        BufferBytes = _backend.BufferBytes + (_validation?.Bytes ?? 0);
    }

    private FeaturePoolDistiller(PreparedDataset data, FeaturePoolOptions options, IFeaturePoolBackend backend, Action<string>? log)
    {
        Options = options.Validate();
        options.Kernel.CheckImageShape(data.Source.Train.Channels, data.Source.Train.Height, data.Source.Train.Width);
        _data = data;
        _backend = backend;
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

        _setup = Stopwatch.StartNew();
        try
        {
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
            backend.Dispose();
            throw;
        }

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
    public double SetupSeconds { get; private set; }
    /// <summary>Bytes of the stored features (targets and validation), wherever they are.</summary>
    public long BufferBytes { get; private set; }
    public int TargetCount => _subset.Length;
    /// <summary>The train-split rows of the target subset, in the order of the stored features.</summary>
    public IReadOnlyList<long> TargetRows => _subset;
    public int ValidationCount { get; }
    /// <summary>The step with the best held-out validation accuracy so far (0: the initial support), and that accuracy.</summary>
    public long BestStep { get; private set; } = -1;
    public double BestValidationAccuracy { get; private set; } = double.NegativeInfinity;
    /// <summary>The stored target features when the pool is in this process.</summary>
    public NetworkFeatureBuffer? TargetFeatures => (_backend as LocalFeaturePoolBackend)?.Shard?.Buffer;

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

    /// <summary>One step in this thread (for the in-process backend, which completes synchronously).</summary>
    public PoolStepReport TakeStep() => TakeStepAsync(CancellationToken.None).GetAwaiter().GetResult();

    public async Task<PoolStepReport> TakeStepAsync(CancellationToken cancellation)
    {
        var watch = Stopwatch.StartNew();
        int[] networks = Options.FreshNetworks ? Enumerable.Range(0, Options.PoolSample).ToArray() : SampleNetworks(Step);
        var rows = _batchSampler.Sample(Options.TargetBatch, Step);
        bool learnLabels = _labelOptimizer is not null;

        // No dispose scope spans the await (scopes belong to a thread): these are disposed by hand.
        // With mirroring the backend sees 2n images; the chain rule back to the n learned ones runs here.
        var xs = SupportImages.detach().requires_grad_(Options.Mirror);
        var ys = SupportLabels.detach().requires_grad_(Options.Mirror && learnLabels);
        var (kernelImages, kernelLabels) = Options.Mirror ? Mirrored(xs, ys) : (xs, ys);
        try
        {
            using var sentImages = kernelImages.detach();
            using var sentLabels = kernelLabels.detach();
            using var result = await _backend.StepAsync(new PoolStepRequest(sentImages, sentLabels, _logScale?.item<double>(), networks, rows,
                rows.Length, learnLabels, Step), cancellation);
            using var scope = NewDisposeScope();
            var (imageGradient, labelGradient) = (result.SupportGradient, result.LabelGradient);
            if (Options.Mirror)
            {
                var outputs = learnLabels ? new List<Tensor> { kernelImages, kernelLabels } : [kernelImages];
                var inputs = learnLabels ? new List<Tensor> { xs, ys } : [xs];
                var cotangents = learnLabels ? new List<Tensor> { result.SupportGradient, result.LabelGradient! } : [result.SupportGradient];
                var folded = torch.autograd.grad(outputs, inputs, cotangents);
                (imageGradient, labelGradient) = (folded[0], learnLabels ? folded[1] : null);
            }
            if (!double.IsFinite(result.Loss) || !double.IsFinite(result.ScaleGradient) || !IsFinite(imageGradient) || (labelGradient is not null && !IsFinite(labelGradient)))
                throw new DivergenceException(Step + 1, $"the loss or its gradient became {result.Loss} / non-finite at step {Step + 1}");
            _imageOptimizer.Step(SupportImages, imageGradient);
            if (_labelOptimizer is not null) _labelOptimizer.Step(SupportLabels, labelGradient!);
            if (_logScale is not null)
            {
                var scaleGradient = tensor(new[] { result.ScaleGradient }, dtype: ScalarType.Float64, device: _logScale.device);
                _scaleOptimizer!.Step(_logScale, scaleGradient);
            }
            Step++;
            return new PoolStepReport(Step, result.Loss, (double)result.Correct / result.Count, watch.Elapsed);
        }
        finally
        {
            if (Options.Mirror)
            {
                kernelImages.Dispose();
                kernelLabels.Dispose();
            }
            xs.Dispose();
            ys.Dispose();
        }
    }

    private static bool IsFinite(Tensor t) => t.isfinite().all().item<bool>();

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
            Options.FeatureType, Options.MaxBufferBytes,
            LocalFeaturePoolBackend.ProgressLog(what, watch, log));
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
        foreach (var network in _heldOutNetworks)
            foreach (var (w, b) in network) { w.Dispose(); b.Dispose(); }
    }

    public void Dispose()
    {
        DisposeNetworks();
        _backend.Dispose();
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
