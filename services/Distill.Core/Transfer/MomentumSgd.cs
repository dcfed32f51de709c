using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Transfer;

/// <summary>
/// SGD with momentum and weight decay, the update torch.optim.SGD makes (no dampening, not
/// Nesterov), operation for operation. Written out because TorchSharp's SGD turns its rates into
/// temporary Scalars inside every step, which a garbage collection can free mid-call (see
/// <see cref="Runtime.HeldScalars"/>); here they are held for the step.
/// </summary>
public sealed class MomentumSgd : IDisposable
{
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly Tensor?[] _velocities;

    public MomentumSgd(IEnumerable<Tensor> parameters, double learningRate, double momentum, double weightDecay)
    {
        _parameters = parameters.ToList();
        _velocities = new Tensor?[_parameters.Count];
        LearningRate = learningRate;
        Momentum = momentum;
        WeightDecay = weightDecay;
    }

    /// <summary>Changed between steps by a schedule.</summary>
    public double LearningRate { get; set; }
    public double Momentum { get; }
    public double WeightDecay { get; }

    /// <summary>Updates every parameter that has a gradient, in place.</summary>
    public void Step()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using Scalar decay = WeightDecay, momentum = Momentum, step = -LearningRate;
        for (int i = 0; i < _parameters.Count; i++)
        {
            var parameter = _parameters[i];
            var gradient = parameter.grad;
            if (gradient is null) continue;
            if (WeightDecay != 0) gradient = gradient.add(parameter, decay);
            if (Momentum != 0)
            {
                if (_velocities[i] is { } velocity) velocity.mul_(momentum).add_(gradient, One);
                else _velocities[i] = gradient.clone().detach().DetachFromDisposeScope();
                gradient = _velocities[i]!;
            }
            parameter.add_(gradient, step);
        }
    }

    public void Dispose()
    {
        foreach (var velocity in _velocities) velocity?.Dispose();
    }
}
