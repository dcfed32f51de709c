namespace Distill.Core.Transfer;

/// <summary>How a transfer network is trained on a (distilled) support set.</summary>
public enum TransferProtocol
{
    /// <summary>Dataset-distillation papers (DC/DSA/MTT): instance norm, cross-entropy on argmax labels, SGD with a step decay.</summary>
    Standard,

    /// <summary>Kernel papers (KIP/RFAD), scaled to a CPU: no norm, MSE on the learned labels, early stopping on held-out training data.</summary>
    Kernel,
}

/// <summary>
/// Settings of <see cref="TransferTrainer"/>. An epoch is one pass over the support set in
/// batches of <see cref="BatchSize"/> (one step for a support set no larger than a batch).
/// </summary>
public sealed record TransferOptions
{
    public TransferProtocol Protocol { get; init; }
    public int Width { get; init; } = ConvNet3.DefaultWidth;
    public bool InstanceNorm { get; init; }
    /// <summary>Cross-entropy on the labels' argmax; otherwise MSE on the labels themselves (0.5 x squared error summed over classes, mean over images).</summary>
    public bool CrossEntropy { get; init; }
    public double LearningRate { get; init; } = 0.01;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; }
    public int BatchSize { get; init; } = 256;
    public int Epochs { get; init; }
    /// <summary>Multiply the learning rate by 0.1 after half of the epochs.</summary>
    public bool DecayAtHalf { get; init; }
    /// <summary>Epochs between held-out evaluations (kernel protocol); 0 = none, the last network is kept.</summary>
    public int EvalEvery { get; init; }
    /// <summary>Stop after this many held-out evaluations without a better accuracy; 0 = never early.</summary>
    public int Patience { get; init; }
    /// <summary>Train and predict f(x) - f_0(x), f_0 the network at initialisation (RFAD's centring).</summary>
    public bool Centering { get; init; }
    /// <summary>Factor on the MSE targets (RFAD's label scaling); argmax predictions are unaffected.</summary>
    public double LabelScale { get; init; } = 1.0;
    /// <summary>Draw weights N(0, <see cref="InitWStd"/>^2 / fan_in) and biases N(0, <see cref="InitBStd"/>^2), the kernel's law, instead of PyTorch's default.</summary>
    public bool KernelInitialization { get; init; }
    public double InitWStd { get; init; } = Math.Sqrt(2);
    public double InitBStd { get; init; } = 0.1;
    /// <summary>Images per forward pass when scoring; bounds memory on large test sets.</summary>
    public int EvalBatchSize { get; init; } = 500;

    /// <summary>DC/DSA's ConvNet-3 evaluation (without differentiable siamese augmentation).</summary>
    public static TransferOptions Standard() => new()
    {
        Protocol = TransferProtocol.Standard,
        InstanceNorm = true,
        CrossEntropy = true,
        LearningRate = 0.01,
        Momentum = 0.9,
        WeightDecay = 5e-4,
        BatchSize = 256,
        Epochs = 300,
        DecayAtHalf = true,
    };

    /// <summary>KIP/RFAD-style evaluation scaled to a CPU: MSE on the learned labels, best held-out checkpoint.</summary>
    public static TransferOptions Kernel() => new()
    {
        Protocol = TransferProtocol.Kernel,
        InstanceNorm = false,
        CrossEntropy = false,
        LearningRate = 0.01,
        Momentum = 0.9,
        WeightDecay = 0,
        BatchSize = 256,
        Epochs = 1000,
        EvalEvery = 50,
        Patience = 6,
    };

    public static TransferOptions For(TransferProtocol protocol) =>
        protocol == TransferProtocol.Standard ? Standard() : Kernel();

    public void Validate()
    {
        if (Width < 1) throw new ArgumentException($"width must be positive, got {Width}");
        if (!(LearningRate > 0)) throw new ArgumentException($"learning rate must be positive, got {LearningRate}");
        if (Momentum is < 0 or >= 1) throw new ArgumentException($"momentum must be in [0, 1), got {Momentum}");
        if (WeightDecay < 0) throw new ArgumentException($"weight decay must not be negative, got {WeightDecay}");
        if (BatchSize < 1) throw new ArgumentException($"batch size must be positive, got {BatchSize}");
        if (Epochs < 1) throw new ArgumentException($"epochs must be positive, got {Epochs}");
        if (EvalEvery < 0) throw new ArgumentException($"eval-every must not be negative, got {EvalEvery}");
        if (Patience < 0) throw new ArgumentException($"patience must not be negative, got {Patience}");
        if (!(InitWStd > 0) || !(InitBStd >= 0)) throw new ArgumentException($"init W_std must be positive and b_std not negative, got {InitWStd} and {InitBStd}");
        if (!(LabelScale > 0)) throw new ArgumentException($"label scale must be positive, got {LabelScale}");
        if (EvalBatchSize < 1) throw new ArgumentException($"eval batch size must be positive, got {EvalBatchSize}");
    }
}
