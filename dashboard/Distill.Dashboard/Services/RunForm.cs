using Distill.Client;

namespace Distill.Dashboard.Services;

/// <summary>
/// The new-run form's model: every field of <see cref="RunSpecification"/>, starting at the
/// distiller's real defaults so that what the form shows is what the run gets.
/// </summary>
public sealed class RunForm
{
    public string Dataset { get; set; } = "";
    public DatasetFormat Format { get; set; } = DatasetFormat.Detect;
    public DistillationMethod Method { get; set; } = DistillationMethod.Kip;
    public KernelKind KernelKind { get; set; } = KernelKind.Ntk;
    public int KernelDepth { get; set; } = 1;
    public double KernelWStd { get; set; } = Math.Sqrt(2);
    public double KernelBStd { get; set; } = 0.1;
    public int SupportPerClass { get; set; } = 1;
    public int Steps { get; set; } = 1000;
    public double LearningRate { get; set; } = 0.01;
    public int TargetBatch { get; set; } = 5000;
    public bool FixedLabels { get; set; }
    public bool Standardize { get; set; } = true;
    public bool Zca { get; set; }
    public double ZcaRegularization { get; set; } = 0.1;
    public int Seed { get; set; }
    public int EvaluateEvery { get; set; } = 100;
    public int CheckpointEvery { get; set; } = 50;
    public double Regularization { get; set; } = 1e-6;
    public SupportInitialization Initialization { get; set; } = SupportInitialization.Real;

    /// <summary>Null: the fully connected kernel; otherwise a kernel of this convolutional network.</summary>
    public ConvolutionalNetwork? Network { get; set; }
    public ConvolutionalReadout Readout { get; set; } = ConvolutionalReadout.Flatten;
    /// <summary>The image shape a convolutional kernel reads: the dataset's.</summary>
    public int ImageChannels { get; set; } = 3;
    public int ImageHeight { get; set; } = 32;
    public int ImageWidth { get; set; } = 32;
    /// <summary>Convolutional NNGP estimated by random finite networks (RFAD) instead of computed exactly.</summary>
    public bool RandomFeatures { get; set; }
    public int RandomFeatureNetworks { get; set; } = 8;
    public int RandomFeatureWidth { get; set; } = 256;
    /// <summary>The seed random networks are drawn from (random features and feature pools).</summary>
    public long NetworkSeed { get; set; }

    /// <summary>Feature-pool KIP (convolutional NNGP only), with the pool's fields below.</summary>
    public bool FeaturePool { get; private set; }
    public int PoolSize { get; set; } = 32;
    public int PoolSample { get; set; } = 8;
    public int PoolWidth { get; set; } = 64;
    public int PoolTargets { get; set; } = 10000;
    public int HeldOutNetworks { get; set; } = 8;
    public int ValidationPerClass { get; set; } = 100;
    public int ValidateEvery { get; set; } = 100;
    public PoolLoss PoolLoss { get; set; } = PoolLoss.Mse;
    public bool Mirror { get; set; }
    /// <summary>0: the exact kernel scores the whole test split.</summary>
    public int TestSubset { get; set; }

    // A feature pool's own defaults, taken when the fields still hold exact KIP's.
    private const double PoolLearningRate = 0.003, KipLearningRate = 0.01;
    private const int PoolTargetBatch = 2000, KipTargetBatch = 5000;

    /// <summary>Turns feature-pool KIP on or off; the learning rate and target batch follow its defaults unless changed.</summary>
    public void SetFeaturePool(bool on)
    {
        if (on == FeaturePool) return;
        FeaturePool = on;
        var (fromRate, toRate, fromBatch, toBatch) = on
            ? (KipLearningRate, PoolLearningRate, KipTargetBatch, PoolTargetBatch)
            : (PoolLearningRate, KipLearningRate, PoolTargetBatch, KipTargetBatch);
        if (LearningRate == fromRate) LearningRate = toRate;
        if (TargetBatch == fromBatch) TargetBatch = toBatch;
    }

    /// <summary>The kernel the fields describe.</summary>
    public KernelSpecification Kernel() => Network switch
    {
        null => new KernelSpecification(KernelSpecification.FullyConnected, KernelKind, KernelDepth, KernelWStd, KernelBStd),
        { } network when RandomFeatures => KernelSpecification.RandomFeatureKernel(network, ImageChannels, ImageHeight, ImageWidth,
            RandomFeatureNetworks, RandomFeatureWidth, (ulong)NetworkSeed, Readout) with { WStd = KernelWStd, BStd = KernelBStd },
        { } network => KernelSpecification.ConvolutionalKernel(network, ImageChannels, ImageHeight, ImageWidth, KernelKind, Readout)
            with { WStd = KernelWStd, BStd = KernelBStd },
    };

    /// <summary>Classes in the dataset, for the size hint only (the distiller finds them itself).</summary>
    public int HintClasses { get; set; } = 10;

    /// <summary>
    /// A rough size of one step: the support set (images per class x classes) and the kernel
    /// block between the target batch and the support set, at float64.
    /// </summary>
    public SizeHint Hint()
    {
        long support = (long)Math.Max(0, SupportPerClass) * Math.Max(0, HintClasses);
        long targets = Math.Max(0, TargetBatch);
        return new SizeHint(support, targets, targets * support, targets * support * 8 / (1024.0 * 1024.0));
    }

    public RunSpecification ToSpec() => new()
    {
        Dataset = Dataset.Trim(),
        Format = Format,
        Method = Method,
        Kernel = Kernel(),
        SupportPerClass = SupportPerClass,
        Steps = Method == DistillationMethod.LabelSolve ? 0 : Steps,
        LearningRate = LearningRate,
        TargetBatch = TargetBatch,
        FixedLabels = FixedLabels,
        Preprocessing = new PreprocessingSpecification(Standardize, Zca, ZcaRegularization),
        Seed = Seed,
        EvaluateEvery = EvaluateEvery,
        CheckpointEvery = CheckpointEvery,
        Regularization = Regularization,
        Initialization = Initialization,
        FeaturePool = FeaturePool && Network is not null ? new FeaturePoolSpecification
        {
            PoolSize = PoolSize, PoolSample = PoolSample, Width = PoolWidth, TargetSubset = PoolTargets, HeldOutNetworks = HeldOutNetworks,
            ValidationPerClass = ValidationPerClass, ValidateEvery = ValidateEvery, Loss = PoolLoss, Mirror = Mirror, TestSubset = TestSubset, NetworkSeed = (ulong)NetworkSeed,
        } : null,
    };

    /// <summary>A form filled from an existing run's spec (the server's copy has every default filled).</summary>
    public static RunForm FromSpec(RunSpecification spec)
    {
        var form = new RunForm
        {
            Dataset = spec.Dataset,
            Format = spec.Format,
            Method = spec.Method,
            SupportPerClass = spec.SupportPerClass,
            Steps = spec.Steps > 0 ? spec.Steps : 1000,
            FixedLabels = spec.FixedLabels,
            Seed = spec.Seed,
            Initialization = spec.Initialization,
        };
        if (spec.Kernel is { } k)
        {
            form.KernelKind = k.Kind;
            form.KernelDepth = k.Depth ?? form.KernelDepth;
            form.KernelWStd = k.WStd ?? form.KernelWStd;
            form.KernelBStd = k.BStd ?? form.KernelBStd;
            if (k.Architecture != KernelSpecification.FullyConnected)
            {
                form.Network = k.Network;
                form.Readout = k.Readout;
                (form.ImageChannels, form.ImageHeight, form.ImageWidth) = (k.ImageChannels, k.ImageHeight, k.ImageWidth);
                form.RandomFeatures = k.Architecture == KernelSpecification.RandomFeatures;
                form.RandomFeatureNetworks = k.Networks ?? form.RandomFeatureNetworks;
                form.RandomFeatureWidth = k.Width ?? form.RandomFeatureWidth;
                if (form.RandomFeatures) form.NetworkSeed = (long)k.Seed;
            }
        }
        if (spec.FeaturePool is { } pool)
        {
            form.SetFeaturePool(true);
            form.PoolSize = pool.PoolSize ?? form.PoolSize;
            form.PoolSample = pool.PoolSample ?? form.PoolSample;
            form.PoolWidth = pool.Width ?? form.PoolWidth;
            form.PoolTargets = pool.TargetSubset ?? form.PoolTargets;
            form.HeldOutNetworks = pool.HeldOutNetworks ?? form.HeldOutNetworks;
            form.ValidationPerClass = pool.ValidationPerClass ?? form.ValidationPerClass;
            form.ValidateEvery = pool.ValidateEvery ?? form.ValidateEvery;
            form.PoolLoss = pool.Loss;
            form.Mirror = pool.Mirror;
            form.TestSubset = pool.TestSubset ?? 0;
            form.NetworkSeed = (long)pool.NetworkSeed;
        }
        if (spec.Preprocessing is { } p)
        {
            form.Standardize = p.Standardize;
            form.Zca = p.Zca;
            form.ZcaRegularization = p.ZcaRegularization ?? form.ZcaRegularization;
        }
        form.LearningRate = spec.LearningRate ?? form.LearningRate;
        form.TargetBatch = spec.TargetBatch ?? form.TargetBatch;
        form.EvaluateEvery = spec.EvaluateEvery ?? form.EvaluateEvery;
        form.CheckpointEvery = spec.CheckpointEvery ?? form.CheckpointEvery;
        form.Regularization = spec.Regularization ?? form.Regularization;
        return form;
    }
}

/// <param name="Support">Synthetic images: images per class x classes.</param>
/// <param name="Targets">The target batch.</param>
/// <param name="GramEntries">Targets x support kernel entries per step.</param>
/// <param name="GramMegabytes">Their size at float64, in MiB.</param>
public sealed record SizeHint(long Support, long Targets, long GramEntries, double GramMegabytes);
