using Distill.Core.Distillation;
using Distill.Core.Regression;
using Distill.Protos.Kernel.V1;

namespace Distill.Protos.Conversions;

public static class KipShardMessages
{
    /// <summary>
    /// A shard response as the engine's result. Non-finite values are let through: a
    /// diverging run must reach the distiller's divergence check, not fail on parsing.
    /// </summary>
    public static KipShardResult ToResult(this KipShardResponse response) => new()
    {
        Loss = response.Loss,
        Reduction = response.Reduction.ToTorch("reduction", allowNonFinite: true),
        SupportGradient = response.SupportGradient.ToTorch("support_gradient", allowNonFinite: true),
        LabelGradient = response.LabelGradient?.ToTorch("label_gradient", allowNonFinite: true),
        Method = Enum.TryParse<SolveMethod>(response.SolveMethod, out var method) ? method : SolveMethod.Cholesky,
    };
}
