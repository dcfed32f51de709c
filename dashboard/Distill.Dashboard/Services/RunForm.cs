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
        Kernel = new KernelSpecification(KernelSpecification.FullyConnected, KernelKind, KernelDepth, KernelWStd, KernelBStd),
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
