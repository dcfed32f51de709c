namespace Distill.Client;

/// <summary>
/// What a run computes. Null properties take the server's defaults (named beside them); the
/// <see cref="RunInfo.Spec"/> the server returns has every default filled in.
/// </summary>
public sealed record RunSpecification
{
    /// <summary>Dataset folder under the data root, e.g. "mnist".</summary>
    public required string Dataset { get; init; }
    public DatasetFormat Format { get; init; } = DatasetFormat.Detect;
    public DistillationMethod Method { get; init; } = DistillationMethod.Kip;
    /// <summary>Null: a fully connected NTK with every default.</summary>
    public KernelSpecification? Kernel { get; init; }
    /// <summary>Required, 1 or more.</summary>
    public int SupportPerClass { get; init; } = 1;
    /// <summary>Adam steps: 1 or more for KIP; 0 for Label Solve.</summary>
    public int Steps { get; init; }
    /// <summary>Null: 0.01.</summary>
    public double? LearningRate { get; init; }
    /// <summary>Null: 5000.</summary>
    public int? TargetBatch { get; init; }
    /// <summary>Labels are learned unless set.</summary>
    public bool FixedLabels { get; init; }
    /// <summary>Null: standardise only.</summary>
    public PreprocessingSpecification? Preprocessing { get; init; }
    public int Seed { get; init; }
    /// <summary>Null: 100; 0: only at the end.</summary>
    public int? EvaluateEvery { get; init; }
    /// <summary>Null: 50. Each checkpoint is also a snapshot.</summary>
    public int? CheckpointEvery { get; init; }
    /// <summary>Null: 1e-6.</summary>
    public double? Regularization { get; init; }
    public SupportInitialization Initialization { get; init; } = SupportInitialization.Real;
    /// <summary>Null: KIP with the exact kernel; set: feature-pool KIP (learning rate 0.003 and target batch 2000 when null).</summary>
    public FeaturePoolSpecification? FeaturePool { get; init; }
}
