namespace Distill.Client;

public enum DistillationMethod
{
    /// <summary>Kernel Inducing Points: Adam steps on the support set.</summary>
    Kip,
    /// <summary>One closed-form solve for the labels of a fixed support set.</summary>
    LabelSolve,
}

public enum SupportInitialization
{
    /// <summary>Real images drawn from the training split.</summary>
    Real,
    Noise,
}
