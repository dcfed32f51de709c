using Distill.Core.Errors;
using Distill.Core.Kernels;
using Distill.Core.Regression;

namespace Distill.Core.Distillation;

public enum DistillationMethod
{
    /// <summary>Kernel Inducing Points: learn support images (and optionally labels) by Adam.</summary>
    Kip,
    /// <summary>Label Solve: closed-form labels for fixed, real support images.</summary>
    LabelSolve,
}

public enum SupportInitialization
{
    /// <summary>Class-balanced random real (preprocessed) training images.</summary>
    Real,
    /// <summary>Standard Gaussian noise in feature space.</summary>
    Noise,
}

/// <summary>Everything that determines a distillation run; equal options and data give equal runs.</summary>
public sealed record KipOptions
{
    public DistillationMethod Method { get; init; } = DistillationMethod.Kip;
    public KernelSpec Kernel { get; init; } = new();
    public int SupportPerClass { get; init; } = 1;
    public int Steps { get; init; } = 300;
    public double LearningRate { get; init; } = 0.01;
    public int TargetBatch { get; init; } = 5000;
    public bool LearnLabels { get; init; } = true;
    public SupportInitialization Initialization { get; init; } = SupportInitialization.Real;
    public double Regularization { get; init; } = KernelRidgeRegression.DefaultRegularization;
    public int Seed { get; init; }
    public int EvaluateEvery { get; init; } = 100;
    public int CheckpointEvery { get; init; } = 100;
    public int BlockRows { get; init; } = GramMatrix.DefaultBlockRows;

    /// <summary>Throws <see cref="InvalidFieldException"/> naming the first invalid field.</summary>
    public KipOptions Validate()
    {
        Kernel.Validate();
        if (!Enum.IsDefined(Method)) throw Invalid("method", $"unknown method {(int)Method}");
        if (!Enum.IsDefined(Initialization)) throw Invalid("initialization", $"unknown initialization {(int)Initialization}");
        if (SupportPerClass < 1 || SupportPerClass > 100_000) throw Invalid("support_per_class", $"must be between 1 and 100000, got {SupportPerClass}");
        if (Steps < 0) throw Invalid("steps", $"must not be negative, got {Steps}");
        if (!double.IsFinite(LearningRate) || LearningRate <= 0) throw Invalid("learning_rate", $"must be a positive finite number, got {LearningRate}");
        if (TargetBatch < 1) throw Invalid("target_batch", $"must be positive, got {TargetBatch}");
        if (!double.IsFinite(Regularization) || Regularization < 0) throw Invalid("regularization", $"must be a non-negative finite number, got {Regularization}");
        if (EvaluateEvery < 0) throw Invalid("evaluate_every", $"must not be negative, got {EvaluateEvery}");
        if (CheckpointEvery < 0) throw Invalid("checkpoint_every", $"must not be negative, got {CheckpointEvery}");
        if (BlockRows < 1) throw Invalid("block_rows", $"must be positive, got {BlockRows}");
        return this;
    }

    private static InvalidFieldException Invalid(string field, string problem) => new(field, problem);
}
