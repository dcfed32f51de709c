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
    config.AddCommand<KernelServiceLoadCommand>("load-kernel").WithDescription("Load one kernel service with concurrent KIP shard steps for a fixed time.");
    config.AddCommand<DistillerSoakCommand>("soak").WithDescription("Start, watch, check and delete short runs on a distiller, several at once, for a fixed time.");
    config.AddCommand<SubmitCommand>("submit").WithDescription("Start a run on a distiller service and follow it to the end.");
    config.AddCommand<TransferCommand>("transfer").WithDescription("Train finite ConvNet-3 networks on a distilled set (or a random real subset) and report test accuracy over seeds.");
    config.AddCommand<EvaluateCommand>("evaluate").WithDescription("KRR test accuracy of a distilled set (distilled.safetensors) on a dataset.");
});
return app.Run(args);
