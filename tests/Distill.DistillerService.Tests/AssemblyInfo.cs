// Servers and runs are heavy and TorchSharp state is per process: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
