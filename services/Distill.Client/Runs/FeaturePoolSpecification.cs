namespace Distill.Client;

/// <summary>The loss a feature-pool step minimises.</summary>
public enum PoolLoss
{
    Mse,
    /// <summary>RFAD's Platt variant: cross-entropy of a learned scale times the predictions.</summary>
    Platt,
}

/// <summary>
/// Feature-pool KIP (random ConvNet features with the targets' features computed once, sharded
/// over the kernel services); set on a KIP run with a convolutional NNGP kernel. Null
/// properties take the server's defaults (named beside them).
/// </summary>
public sealed record FeaturePoolSpecification
{
    /// <summary>Null: 32 random networks whose target features are stored.</summary>
    public int? PoolSize { get; init; }
    /// <summary>Null: 8 networks sampled per step.</summary>
    public int? PoolSample { get; init; }
    /// <summary>Null: 64 channels per convolution.</summary>
    public int? Width { get; init; }
    public ulong NetworkSeed { get; init; }
    /// <summary>Null: 10000 class-balanced training images.</summary>
    public int? TargetSubset { get; init; }
    /// <summary>Null: 8 networks that score validation and are never sampled.</summary>
    public int? HeldOutNetworks { get; init; }
    /// <summary>Null: 100 held-out training images per class.</summary>
    public int? ValidationPerClass { get; init; }
    /// <summary>Null: 100; 0: no validation (the last step is kept).</summary>
    public int? ValidateEvery { get; init; }
    public PoolLoss Loss { get; init; } = PoolLoss.Mse;
    /// <summary>The kernel sees each support image and its horizontal mirror image.</summary>
    public bool Mirror { get; init; }
    /// <summary>Null or 0: the exact kernel scores the whole test split; N: a fixed class-balanced subset of N test images.</summary>
    public int? TestSubset { get; init; }
}
