using Distill.Cli.Commands;
using Spectre.Console.Cli;

var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("distill");
    config.AddCommand<KipCommand>("kip").WithDescription("Distill a dataset with Kernel Inducing Points (or Label Solve with --method ls).");
    config.AddCommand<StepBenchmarkCommand>("step-benchmark").WithDescription("Time one KIP step on random data of a given shape.");
    config.AddCommand<PoolStepBenchmarkCommand>("pool-step-benchmark").WithDescription("Time a pooled random-feature ConvNet3 KIP step beside the exact ConvNet3 and FC kernels' steps.");
    config.AddCommand<KernelServiceBenchmarkCommand>("kernel-benchmark").WithDescription("Compare KIP steps through a kernel service with steps in process.");
    config.AddCommand<SubmitCommand>("submit").WithDescription("Start a run on a distiller service and follow it to the end.");
    config.AddCommand<EvaluateCommand>("evaluate").WithDescription("KRR test accuracy of a distilled set (distilled.safetensors) on a dataset.");
});
return app.Run(args);
