namespace Distill.Client;

/// <summary>How the finite networks of a transfer evaluation are trained.</summary>
public enum TransferProtocolKind
{
    /// <summary>The kernel papers' protocol on a CPU: ConvNet-3 without normalisation, MSE on the set's labels, early stopping on held-out training images.</summary>
    Kernel,
    /// <summary>The dataset-distillation standard: ConvNet-3 with instance norm, cross-entropy, weight decay, 300 epochs.</summary>
    Standard,
}

/// <summary>
/// Finite ConvNet-3 networks trained on a run's support set and scored on the test split.
/// Null properties take the protocol's defaults, which the result echoes.
/// </summary>
public sealed record TransferSpecification
{
    public TransferProtocolKind Protocol { get; init; } = TransferProtocolKind.Kernel;
    /// <summary>Networks, seeds 0..n-1; null: 5.</summary>
    public int? Seeds { get; init; }
    /// <summary>Channels of each convolution; null: 128.</summary>
    public int? Width { get; init; }
    /// <summary>Null: 1000 (kernel), 300 (standard).</summary>
    public int? Epochs { get; init; }
    public double? LearningRate { get; init; }
    /// <summary>Kernel protocol: training images held out for early stopping; null: 1000.</summary>
    public int? HeldOut { get; init; }
    public int? EvalEvery { get; init; }
    public int? Patience { get; init; }
    /// <summary>A class-balanced part of the test split; null: all of it.</summary>
    public int? MaxTest { get; init; }
}

/// <param name="BestEpoch">The epoch kept (kernel protocol), else the last.</param>
public sealed record TransferSeedResult(long Seed, double TestAccuracy, int Epochs, int BestEpoch);

/// <summary>A transfer evaluation: the mean and spread over its networks, each network's result, and the spec as it ran.</summary>
public sealed record TransferEvaluation(double TestAccuracy, double TestAccuracyStd, long Step, IReadOnlyList<TransferSeedResult> Seeds,
    TransferSpecification Spec, int TestCount, TimeSpan Duration);
