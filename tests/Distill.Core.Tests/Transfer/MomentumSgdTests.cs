using Distill.Core.Transfer;
using TorchSharp.Modules;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Transfer;

public class MomentumSgdTests : TensorLeakCheck
{
    [Theory]
    [InlineData(0.9, 5e-4)]
    [InlineData(0.0, 0.0)]
    [InlineData(0.5, 0.0)]
    public void Steps_MatchTorchSgd_IncludingAfterTheRateChanges(double momentum, double weightDecay)
    {
        AllowModuleParameters(4);
        using var a = Parameters(out var b);
        using var c = Parameters(out var d);
#pragma warning disable DIST002 // TorchSharp's own SGD is the reference here
        using var reference = optim.SGD([a, b], 0.05, momentum, weight_decay: weightDecay);
#pragma warning restore DIST002
        using var ours = new MomentumSgd([c, d], 0.05, momentum, weightDecay);
        for (int step = 0; step < 6; step++)
        {
            if (step == 3)
            {
                foreach (var group in reference.ParamGroups) group.LearningRate = 0.005;
                ours.LearningRate = 0.005;
            }
            using (NewDisposeScope())
            {
                reference.zero_grad();
                Loss(a, b).backward();
                reference.step();
                c.grad?.zero_();
                d.grad?.zero_();
                Loss(c, d).backward();
                ours.Step();
            }
            TensorAssert.Close(a, c, 0, $"first parameter after step {step + 1}");
            TensorAssert.Close(b, d, 0, $"second parameter after step {step + 1}");
        }
        b.Dispose();
        d.Dispose();
    }

    private static Parameter Parameters(out Parameter second)
    {
        var generator = new Generator(3);
        second = nn.Parameter(randn(4, dtype: ScalarType.Float64, generator: generator));
        return nn.Parameter(randn(5, 4, dtype: ScalarType.Float64, generator: generator));
    }

    // A small non-quadratic loss, so that gradients change from step to step.
    private static Tensor Loss(Tensor weights, Tensor bias)
    {
        using var x = ones(5, dtype: ScalarType.Float64);
        return weights.matmul(bias).tanh().sum().add(bias.square().sum().sqrt(), One).add(x.matmul(weights).sum(), One);
    }
}
