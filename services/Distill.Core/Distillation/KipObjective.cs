using Distill.Core.Kernels;
using Distill.Core.Regression;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>
/// The part of one KIP step that a single target shard contributes (DESIGN.md, data flow).
/// Every field is linear in the shard's targets, so summing results over shards gives the
/// result for the whole batch to float64 round-off.
/// </summary>
public sealed class KipShardResult : IDisposable
{
    public required double Loss { get; init; }
    /// <summary>M_j = K_(tj,s)^T R_j, n_s x C: the shard's reduction term.</summary>
    public required Tensor Reduction { get; init; }
    /// <summary>dL_j/dX_s, including the shard's share of the K_ss term.</summary>
    public required Tensor SupportGradient { get; init; }
    /// <summary>dL_j/dY_s when labels are learned, else null.</summary>
    public Tensor? LabelGradient { get; init; }
    public required SolveMethod Method { get; init; }

    public void Dispose()
    {
        Reduction.Dispose();
        SupportGradient.Dispose();
        LabelGradient?.Dispose();
    }
}

/// <summary>
/// The KIP loss L = 0.5 |K_ts (K_ss + lambda I)^-1 Y_s - Y_t|^2 / (n_t C) and its gradient
/// with respect to the support images and labels (kernel-math.md section 3).
/// </summary>
public sealed class KipObjective
{
    public KipObjective(IKernel kernel, double regularization = KernelRidgeRegression.DefaultRegularization)
    {
        if (!double.IsFinite(regularization) || regularization < 0)
            throw new ArgumentException($"regularization: must be a non-negative finite number, got {regularization}", nameof(regularization));
        Kernel = kernel;
        Regularization = regularization;
    }

    public IKernel Kernel { get; }
    public double Regularization { get; }

    /// <summary>
    /// Loss and gradients from one shard of the target batch. With
    /// alpha = A^-1 Y_s, R = K_ts alpha - Y_t, G = R / (n_t C):
    /// dL/dK_ts = G alpha^T; beta = A^-1 K_ts^T G; dL/dK_ss = -beta alpha^T - sum(beta o alpha) reg/n_s I;
    /// dL/dY_s = beta. The K_ss term is linear in the shard's targets, so each shard
    /// carries its own share and a single reduce of the results finishes the step.
    /// </summary>
    public KipShardResult ShardStep(Tensor supportImages, Tensor supportLabels, Tensor targetImages, Tensor targetLabels,
        long totalTargets, bool wantLabelGradient)
    {
        CheckShapes(supportImages, supportLabels, targetImages, targetLabels);
        if (totalTargets < targetImages.shape[0])
            throw new ArgumentException($"total_targets ({totalTargets}) is smaller than the shard ({targetImages.shape[0]})", nameof(totalTargets));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ns = supportImages.shape[0];
        var classes = supportLabels.shape[1];
        double scale = 1.0 / ((double)totalTargets * classes);

        using var kss = Kernel.ForwardSymmetric(supportImages);
        using var kts = Kernel.Forward(targetImages, supportImages);

        var ridgeValue = KernelRidgeRegression.Ridge(kss.Value, Regularization).item<double>();
        // Scalars held for the whole call (see HeldScalars).
        using Scalar ridge = ridgeValue, scaleScalar = scale, ridgeScale = Regularization / ns;
        var (factor, method) = KernelRidgeRegression.Factor(kss.Value, ridgeValue);
        Tensor SolveA(Tensor rhs) => factor is not null
            ? cholesky_solve(rhs, factor)
            : linalg.solve(kss.Value.add(eye(ns, dtype: kss.Value.dtype, device: kss.Value.device).mul(ridge), One), rhs);

        var alpha = SolveA(supportLabels);
        var residual = kts.Value.matmul(alpha).sub_(targetLabels);
        var loss = residual.square().sum().item<double>() * 0.5 * scale;
        var reduction = kts.Value.t().matmul(residual);
        var beta = SolveA(reduction.mul(scaleScalar));
        var costTs = residual.mul(scaleScalar).matmul(alpha.t());
        var ridgeGrad = beta.mul(alpha).sum().neg().mul(ridgeScale);
        var costSs = beta.matmul(alpha.t()).neg_().add_(eye(ns, dtype: kss.Value.dtype, device: kss.Value.device).mul(ridgeGrad), One);

        var gradient = kts.Backward(costTs, wantGrad1: false).Grad2!.add_(kss.Backward(costSs).Grad1!, One);
        return new KipShardResult
        {
            Loss = loss,
            Reduction = reduction.MoveToOuterDisposeScope(),
            SupportGradient = gradient.MoveToOuterDisposeScope(),
            LabelGradient = wantLabelGradient ? beta.MoveToOuterDisposeScope() : null,
            Method = method,
        };
    }

    private static void CheckShapes(Tensor xs, Tensor ys, Tensor xt, Tensor yt)
    {
        if (xs.dim() != 2 || xt.dim() != 2 || ys.dim() != 2 || yt.dim() != 2)
            throw new ArgumentException("support and target images and labels must be matrices");
        if (xs.shape[0] == 0)
            throw new ArgumentException("support_images: the support set is empty");
        if (ys.shape[0] != xs.shape[0])
            throw new ArgumentException($"support_labels: {ys.shape[0]} rows for {xs.shape[0]} support images");
        if (yt.shape[0] != xt.shape[0])
            throw new ArgumentException($"target_labels: {yt.shape[0]} rows for {xt.shape[0]} target images");
        if (ys.shape[1] != yt.shape[1])
            throw new ArgumentException($"target_labels: {yt.shape[1]} classes, support labels have {ys.shape[1]}");
        if (xs.shape[1] != xt.shape[1])
            throw new ArgumentException($"target_images: {xt.shape[1]} features, support images have {xs.shape[1]}");
    }
}
