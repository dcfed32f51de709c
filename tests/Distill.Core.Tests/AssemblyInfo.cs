// TorchSharp dispose scopes and thread settings are per process; tests run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
