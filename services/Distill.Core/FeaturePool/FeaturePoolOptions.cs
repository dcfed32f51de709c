using Distill.Core.Distillation;
using Distill.Core.Errors;
using Distill.Core.Kernels;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>The loss a pooled KIP step minimises on the target batch.</summary>
public enum PoolLoss
{
    /// <summary>KIP's 0.5 |f(X_t) - Y_t|^2 / (n_t C).</summary>
    Mse,
    /// <summary>RFAD's Platt variant: cross-entropy of e^kappa f(X_t) with the target classes, kappa learned.</summary>
    Platt,
}

/// <summary>
/// KIP with random ConvNet features (kernel-math.md sections 5 and 8): a fixed pool of
/// <see cref="PoolSize"/> random networks whose target features are computed once, of which
/// <see cref="PoolSample"/> are sampled each step; or, with <see cref="FreshNetworks"/>, RFAD's
/// own mode (that many fresh networks every step, targets recomputed). A separate set of
/// <see cref="HeldOutNetworks"/> networks scores the support set on held-out training images
/// to choose the step that is kept (early stopping); the test split is never used for that.
/// </summary>
public sealed record FeaturePoolOptions
{
    public const int DefaultWidth = 64;

    /// <summary>The kernel the networks estimate: a convolutional NNGP (ConvNet3 by default), with the image shape.</summary>
    public KernelSpec Kernel { get; init; } = new(KernelKind.Nngp, Architecture: KernelArchitecture.ConvNet3,
        ImageChannels: 3, ImageHeight: 32, ImageWidth: 32);
    public int PoolSize { get; init; } = 32;
    public int PoolSample { get; init; } = 8;
    public int Width { get; init; } = DefaultWidth;
    public bool FreshNetworks { get; init; }
    /// <summary>Class-balanced training images whose features are stored (the targets steps sample from).</summary>
    public int TargetSubset { get; init; } = 10_000;
    public int TargetBatch { get; init; } = 2000;
    public int HeldOutNetworks { get; init; } = 8;
    /// <summary>Held-out training images per class (disjoint from the target subset) that choose the step kept.</summary>
    public int ValidationPerClass { get; init; } = 100;
    /// <summary>Steps between validations (0: none; the last step is kept).</summary>
    public int ValidateEvery { get; init; } = 100;
    public int SupportPerClass { get; init; } = 1;
    public int Steps { get; init; } = 1000;
    public double LearningRate { get; init; } = 3e-3;
    public bool LearnLabels { get; init; } = true;
    /// <summary>The kernel sees each support image and its horizontal mirror image (<see cref="MirroredSupport"/>), in steps and evaluations.</summary>
    public bool Mirror { get; init; }
    public SupportInitialization Initialization { get; init; } = SupportInitialization.Real;
    public PoolLoss Loss { get; init; } = PoolLoss.Mse;
    public double Regularization { get; init; } = 1e-6;
    public int Seed { get; init; }
    /// <summary>Seed of the pool's networks; the held-out ones and fresh ones derive their own from it.</summary>
    public ulong NetworkSeed { get; init; }
    /// <summary>Bound on the stored feature buffers (targets and validation), bytes.</summary>
    public long MaxBufferBytes { get; init; } = 4L << 30;
    /// <summary>Precision of the network passes and stored features; Grams are solved in float64 either way.</summary>
    public ScalarType FeatureType { get; init; } = ScalarType.Float32;

    public FeaturePoolOptions Validate()
    {
        var spec = Kernel.Validate();
        if (!spec.IsConvolutional || spec.Kind != KernelKind.Nngp)
            throw new InvalidFieldException("kernel", $"a feature pool needs a convolutional NNGP kernel, got {spec}");
        if (spec.RandomFeatures is not null)
            throw new InvalidFieldException("kernel.random_features", "the feature pool draws its own networks; give the exact kernel");
        if (PoolSize < 1 || PoolSize > RandomFeatureConvKernel.MaxNetworks) throw Invalid("feature_pool", $"must be between 1 and {RandomFeatureConvKernel.MaxNetworks}, got {PoolSize}");
        if (PoolSample < 1 || (!FreshNetworks && PoolSample > PoolSize)) throw Invalid("pool_sample", $"must be between 1 and the pool size {PoolSize}, got {PoolSample}");
        if (Width < 1 || Width > RandomFeatureConvKernel.MaxWidth) throw Invalid("rf_width", $"must be between 1 and {RandomFeatureConvKernel.MaxWidth}, got {Width}");
        if (TargetSubset < 1) throw Invalid("pool_targets", $"must be positive, got {TargetSubset}");
        if (TargetBatch < 1) throw Invalid("target_batch", $"must be positive, got {TargetBatch}");
        if (HeldOutNetworks < 0 || HeldOutNetworks > RandomFeatureConvKernel.MaxNetworks) throw Invalid("held_out_networks", $"must be between 0 and {RandomFeatureConvKernel.MaxNetworks}, got {HeldOutNetworks}");
        if (ValidationPerClass < 0) throw Invalid("validation_per_class", $"must not be negative, got {ValidationPerClass}");
        if (ValidateEvery < 0) throw Invalid("validate_every", $"must not be negative, got {ValidateEvery}");
        if (ValidateEvery > 0 && (HeldOutNetworks == 0 || ValidationPerClass == 0))
            throw Invalid("validate_every", "validation needs held-out networks and validation images");
        if (SupportPerClass < 1 || SupportPerClass > 100_000) throw Invalid("support_per_class", $"must be between 1 and 100000, got {SupportPerClass}");
        if (Steps < 0) throw Invalid("steps", $"must not be negative, got {Steps}");
        if (!double.IsFinite(LearningRate) || LearningRate <= 0) throw Invalid("learning_rate", $"must be a positive finite number, got {LearningRate}");
        if (!double.IsFinite(Regularization) || Regularization < 0) throw Invalid("regularization", $"must be a non-negative finite number, got {Regularization}");
        if (!Enum.IsDefined(Loss)) throw Invalid("loss", $"unknown loss {(int)Loss}");
        if (!Enum.IsDefined(Initialization)) throw Invalid("initialization", $"unknown initialization {(int)Initialization}");
        if (MaxBufferBytes < 1) throw Invalid("feature_buffer_mb", $"must be positive, got {MaxBufferBytes}");
        if (FeatureType != ScalarType.Float32 && FeatureType != ScalarType.Float64) throw Invalid("feature_type", $"must be float32 or float64, got {FeatureType}");
        return this;
    }

    /// <summary>The random-feature kernel whose networks 0..P-1 are the pool (seed <see cref="NetworkSeed"/>).</summary>
    public RandomFeatureConvKernel PoolNetworks() => new(Kernel, PoolSize, Width, NetworkSeed);

    /// <summary>The held-out networks: another seed, never sampled by a step.</summary>
    public RandomFeatureConvKernel HeldOut() => new(Kernel, Math.Max(1, HeldOutNetworks), Width, HeldOutSeed);

    public ulong HeldOutSeed => unchecked(NetworkSeed ^ 0xA5A5_5A5A_C3C3_3C3CUL);

    /// <summary>RFAD mode: the networks of a step, a pure function of the network seed and step.</summary>
    public RandomFeatureConvKernel FreshNetworksAt(long step) =>
        new(Kernel, PoolSample, Width, unchecked(NetworkSeed * 0x2545F4914F6CDD1DUL + 0x9E37_79B9UL * (ulong)(step + 1) + 0x1234_5678UL));

    private static InvalidFieldException Invalid(string field, string problem) => new(field, problem);
}
