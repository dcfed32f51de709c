// Each test starts its own server; TorchSharp state is per process, so tests run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
