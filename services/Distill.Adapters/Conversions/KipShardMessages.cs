using Distill.Core.Distillation;
using Distill.Core.FeaturePool;
using Distill.Protos.Kernel.V1;

namespace Distill.Adapters.Conversions;

public static class KipShardMessages
{
    /// <summary>
    /// A shard response as the engine's result, gradients flattened as the engine keeps
    /// them. Non-finite values are let through: a diverging run must reach the distiller's
    /// divergence check, not fail on parsing.
    /// </summary>
    public static KipShardResult ToResult(this KipShardStepResponse response)
    {
        var gradient = response.SupportGradient.ToTorch("support_gradient", allowNonFinite: true);
        return new()
        {
            Loss = response.Loss,
            Reduction = response.Reduction.ToTorch("reduction", allowNonFinite: true),
            SupportGradient = gradient.dim() == 2 ? gradient : Flattened(gradient),
            LabelGradient = response.LabelGradient?.ToTorch("label_gradient", allowNonFinite: true),
            Method = response.SolveMethod.ToCore(),
        };
    }

    /// <summary>A feature-pool step's response as the engine's result, as <see cref="ToResult(KipShardStepResponse)"/> does.</summary>
    public static PoolStepResult ToResult(this FeaturePoolStepResponse response)
    {
        var gradient = response.SupportGradient.ToTorch("support_gradient", allowNonFinite: true);
        return new()
        {
            Loss = response.Loss,
            Correct = response.Correct,
            Count = response.TargetCount,
            SupportGradient = gradient.dim() == 2 ? gradient : Flattened(gradient),
            LabelGradient = response.LabelGradient?.ToTorch("label_gradient", allowNonFinite: true),
            ScaleGradient = response.LogScaleGradient,
        };
    }

    private static TorchSharp.torch.Tensor Flattened(TorchSharp.torch.Tensor shaped)
    {
        using (shaped) return shaped.reshape(shaped.shape[0], -1).contiguous();
    }
}
