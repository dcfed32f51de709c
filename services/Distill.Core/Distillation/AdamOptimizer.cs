using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>
/// Adam as in jax.example_libraries.optimizers.adam (the KIP notebook's optimiser).
/// Written out rather than taken from torch.optim so that its moments are plain tensors
/// that a checkpoint can save and restore bit for bit.
/// </summary>
public sealed class AdamOptimizer : IDisposable
{
    public const double Beta1 = 0.9;
    public const double Beta2 = 0.999;
    public const double Epsilon = 1e-8;

    public AdamOptimizer(double learningRate, Tensor parameter)
        : this(learningRate, zeros_like(parameter), zeros_like(parameter), 0) { }

    public AdamOptimizer(double learningRate, Tensor firstMoment, Tensor secondMoment, long stepCount)
    {
        if (!double.IsFinite(learningRate) || learningRate <= 0)
            throw new ArgumentException($"learning_rate: must be a positive finite number, got {learningRate}", nameof(learningRate));
        LearningRate = learningRate;
        FirstMoment = firstMoment;
        SecondMoment = secondMoment;
        StepCount = stepCount;
    }

    public double LearningRate { get; }
    public Tensor FirstMoment { get; }
    public Tensor SecondMoment { get; }
    public long StepCount { get; private set; }

    /// <summary>Updates <paramref name="parameter"/> in place.</summary>
    public void Step(Tensor parameter, Tensor gradient)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        StepCount++;
        // Scalars held in locals: TorchSharp passes a Scalar's raw handle to native code, so a
        // temporary one could be finalized by the GC in the middle of the call.
        using Scalar beta1 = Beta1, oneMinusBeta1 = 1 - Beta1, beta2 = Beta2, oneMinusBeta2 = 1 - Beta2, epsilon = Epsilon;
        using Scalar secondCorrection = 1 - Math.Pow(Beta2, StepCount);
        using Scalar stepSize = -LearningRate / (1 - Math.Pow(Beta1, StepCount));
        FirstMoment.mul_(beta1).add_(gradient, alpha: oneMinusBeta1);
        SecondMoment.mul_(beta2).addcmul_(gradient, gradient, value: oneMinusBeta2);
        var denominator = SecondMoment.div(secondCorrection).sqrt_().add_(epsilon, One);
        parameter.addcdiv_(FirstMoment, denominator, value: stepSize);
    }

    /// <summary>Puts back moments and a step count saved from an optimiser of the same parameter.</summary>
    public void Restore(Tensor firstMoment, Tensor secondMoment, long stepCount)
    {
        using var noGrad = no_grad();
        FirstMoment.copy_(firstMoment);
        SecondMoment.copy_(secondMoment);
        StepCount = stepCount;
    }

    public void Dispose()
    {
        FirstMoment.Dispose();
        SecondMoment.Dispose();
    }
}
