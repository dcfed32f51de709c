namespace Distill.Client;

/// <param name="Step">The checkpoint step whose support set was evaluated.</param>
/// <param name="Kernel">The kernel used, with the server's defaults filled in.</param>
public sealed record EvaluationResult(double TestAccuracy, double TestMse, long Step, KernelSpecification Kernel);
