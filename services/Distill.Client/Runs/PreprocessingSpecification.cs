namespace Distill.Client;

/// <summary>How images are preprocessed before the kernels see them.</summary>
/// <param name="ZcaRegularization">Null: the server's default (0.1).</param>
public sealed record PreprocessingSpecification(bool Standardize = true, bool Zca = false, double? ZcaRegularization = null);
