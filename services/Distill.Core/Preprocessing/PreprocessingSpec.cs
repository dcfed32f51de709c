using Distill.Core.Errors;
namespace Distill.Core.Preprocessing;

/// <summary>
/// How images are transformed before the kernel sees them: per-channel standardisation
/// with train statistics, then optionally regularised ZCA (kernel-math.md section 6).
/// </summary>
public sealed record PreprocessingSpec(bool Standardize = true, bool Zca = false, double ZcaRegularization = 0.1)
{
    public PreprocessingSpec Validate()
    {
        if (!double.IsFinite(ZcaRegularization) || ZcaRegularization <= 0)
            throw new InvalidFieldException("preprocessing.zca_regularization", $"must be a positive finite number, got {ZcaRegularization}");
        return this;
    }
}
