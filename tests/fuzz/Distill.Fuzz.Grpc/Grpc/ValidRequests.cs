using System.Runtime.InteropServices;
using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using KernelClient = Distill.Protos.Kernel.V1.KernelService.KernelServiceClient;
using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;
using KernelListDatasetsRequest = Distill.Protos.Kernel.V1.ListDatasetsRequest;
using DistillerListDatasetsRequest = Distill.Protos.Distiller.V1.ListDatasetsRequest;

namespace Distill.Fuzz.Grpc;

/// <summary>
/// One valid request (or client stream) per RPC of both services, naming things that exist:
/// a dataset uploaded to the kernel service and a finished run of the distiller on the
/// tiny dataset of its data root. The mutator starts from these.
/// </summary>
public sealed class ValidRequests
{
    private const int Classes = 3;
    private static readonly long[] ImageShape = [1, 4, 4];

    private readonly string _runDataset;

    private ValidRequests(string dataset, string run, string runDataset)
    {
        Dataset = dataset;
        Run = run;
        _runDataset = runDataset;
    }

    /// <summary>datasets/{dataset} on the kernel service.</summary>
    public string Dataset { get; private set; }

    /// <summary>runs/{run} on the distiller, ended, with checkpoints and snapshots.</summary>
    public string Run { get; }

    /// <summary>featurePools/{pool} on the kernel service: the dataset's first rows under two random Myrtle-5 networks.</summary>
    public string Pool { get; private set; } = "";

    public static async Task<ValidRequests> CreateAsync(CallInvoker kernel, CallInvoker distiller, string runDataset)
    {
        var dataset = await UploadAsync(kernel);
        var client = new DistillerClient(distiller);
        var run = await client.StartRunAsync(new StartRunRequest { Spec = Spec(runDataset) });
        var ended = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (run.State is RunState.Queued or RunState.Running or RunState.Paused)
        {
            if (DateTime.UtcNow > ended) throw new TimeoutException($"the fuzzer's run {run.Name} did not end within 3 minutes (state {run.State})");
            await Task.Delay(200);
            run = await client.GetRunAsync(new GetRunRequest { Name = run.Name });
        }
        if (run.State != RunState.Succeeded) throw new InvalidOperationException($"the fuzzer's run {run.Name} ended {run.State}: {run.StateMessage}");
        var valid = new ValidRequests(dataset, run.Name, runDataset);
        await valid.EnsurePoolAsync(kernel);
        return valid;
    }

    /// <summary>Registers the feature pool (again, after a fuzzed drop or a replaced dataset); the held one when it is still there.</summary>
    public async Task EnsurePoolAsync(CallInvoker kernel) =>
        Pool = (await new KernelClient(kernel).RegisterFeaturePoolAsync((RegisterFeaturePoolRequest)For("distill.kernel.v1.KernelService.RegisterFeaturePool")[0])).Name;

    /// <summary>Uploads the kernel service's dataset again (after a fuzzed DropDataset dropped it).</summary>
    public async Task ReplaceDatasetAsync(CallInvoker kernel) => Dataset = await UploadAsync(kernel);

    private static async Task<string> UploadAsync(CallInvoker kernel)
    {
        using var call = new KernelClient(kernel).UploadDataset();
        foreach (var request in Upload()) await call.RequestStream.WriteAsync((UploadDatasetRequest)request);
        await call.RequestStream.CompleteAsync();
        return (await call.ResponseAsync).Name;
    }

    public static RunSpec Spec(string dataset) => new()
    {
        Dataset = dataset, SupportPerClass = 1, Steps = 4, TargetBatch = 20, LearningRate = 0.05,
        EvaluateEvery = 2, CheckpointEvery = 2, Seed = 3,
    };

    /// <summary>The requests of <paramref name="method"/> (one, or a client stream's messages).</summary>
    public IReadOnlyList<IMessage> For(string method) => method switch
    {
        "distill.kernel.v1.KernelService.GetServerInfo" => [new GetServerInfoRequest()],
        "distill.kernel.v1.KernelService.UploadDataset" => Upload(),
        "distill.kernel.v1.KernelService.RegisterDataset" => [new RegisterDatasetRequest { Path = _runDataset, Format = DatasetFormat.Idx, LeaseTtl = Duration.FromTimeSpan(TimeSpan.FromMinutes(1)) }],
        "distill.kernel.v1.KernelService.ListDatasets" => [new KernelListDatasetsRequest { PageSize = 10, OrderBy = "display_name" }],
        "distill.kernel.v1.KernelService.DropDataset" => [new DropDatasetRequest { Name = Dataset }],
        "distill.kernel.v1.KernelService.ComputeGram" => [new ComputeGramRequest { Kernel = Kernel(), X1 = Inline(2), X2 = Rows(5), Dtype = DataType.Float32 }],
        "distill.kernel.v1.KernelService.VectorJacobianProduct" => [new VectorJacobianProductRequest
            { Kernel = Kernel(), X1 = Inline(2), X2 = Rows(5), Cotangent = Tensor([2, 5]), WantX1 = true }],
        "distill.kernel.v1.KernelService.SolveKrr" => [new SolveKrrRequest
            { Kernel = Kernel(), Support = Inline(3), SupportLabels = Tensor([3, Classes]), Regularization = 1e-6, Query = Rows(4) }],
        "distill.kernel.v1.KernelService.EvaluateKrr" => [new EvaluateKrrRequest
            { Kernel = Kernel(), Support = Tensor([3, .. ImageShape]), SupportLabels = Tensor([3, Classes]), Dataset = Dataset, Split = Split.Test }],
        "distill.kernel.v1.KernelService.StreamEvaluateKrr" => [new StreamEvaluateKrrRequest
            { Evaluation = (EvaluateKrrRequest)For("distill.kernel.v1.KernelService.EvaluateKrr")[0], BlockRows = 2 }],
        "distill.kernel.v1.KernelService.KipShardStep" => [new KipShardStepRequest
            { Kernel = Kernel(), Support = Tensor([3, .. ImageShape]), SupportLabels = Tensor([3, Classes]), Targets = Rows(6).Rows, TotalTargets = 6, WantLabelGradient = true }],
        "distill.kernel.v1.KernelService.LabelSolveShard" => [new LabelSolveShardRequest { Kernel = Kernel(), Support = Tensor([3, .. ImageShape]), Targets = Rows(6).Rows }],
        "distill.kernel.v1.KernelService.StreamLabelSolveShard" => [new StreamLabelSolveShardRequest
            { Shard = (LabelSolveShardRequest)For("distill.kernel.v1.KernelService.LabelSolveShard")[0], BlockRows = 2 }],
        "distill.kernel.v1.KernelService.RegisterFeaturePool" => [new RegisterFeaturePoolRequest
            { Networks = PoolNetworks(), Targets = Rows(6).Rows, FeatureType = DataType.Float32, LeaseTtl = Duration.FromTimeSpan(TimeSpan.FromMinutes(5)) }],
        "distill.kernel.v1.KernelService.StreamRegisterFeaturePool" => [new StreamRegisterFeaturePoolRequest
            { Registration = (RegisterFeaturePoolRequest)For("distill.kernel.v1.KernelService.RegisterFeaturePool")[0] }],
        "distill.kernel.v1.KernelService.DropFeaturePool" => [new DropFeaturePoolRequest { Name = Pool }],
        "distill.kernel.v1.KernelService.FeaturePoolStep" => [new FeaturePoolStepRequest
        {
            Pool = Pool, Support = Tensor([3, .. ImageShape]), SupportLabels = Tensor([3, Classes]), Networks = { 0, 1 }, Rows = { 0, 2, 4 },
            TotalTargets = 3, Loss = PoolLoss.Platt, LogScale = 0.1, Regularization = 1e-6, WantLabelGradient = true,
        }],
        "distill.kernel.v1.KernelService.FeaturePoolProducts" => [new FeaturePoolProductsRequest
            { Pool = Pool, Support = Tensor([3, .. ImageShape]), Networks = { 1 }, Rows = { 0, 1 }, KeepForGradient = true }],
        "distill.kernel.v1.KernelService.FeaturePoolProductsGradient" => [new FeaturePoolProductsGradientRequest
        {
            Pool = Pool, Support = Tensor([3, .. ImageShape]), Networks = { 1 }, Rows = { 0, 1 },
            SupportCotangent = Tensor([3, 3]), TargetCotangent = Tensor([2, 3]),
        }],

        "distill.distiller.v1.DistillerService.StartRun" => [new StartRunRequest { Spec = Spec(_runDataset), RequestId = Guid.NewGuid().ToString() }],
        "distill.distiller.v1.DistillerService.GetRun" => [new GetRunRequest { Name = Run }],
        "distill.distiller.v1.DistillerService.ListRuns" => [new ListRunsRequest { PageSize = 5, States = { RunState.Succeeded }, Dataset = _runDataset, OrderBy = "update_time" }],
        "distill.distiller.v1.DistillerService.WatchRun" => [new WatchRunRequest { Name = Run, AfterSequence = 1 }],
        "distill.distiller.v1.DistillerService.CancelRun" => [new CancelRunRequest { Name = Run }],
        "distill.distiller.v1.DistillerService.ResumeRun" => [new ResumeRunRequest { Name = Run, Steps = 5 }],
        "distill.distiller.v1.DistillerService.DeleteRun" => [new DeleteRunRequest { Name = Run + "-absent" }],
        "distill.distiller.v1.DistillerService.ListSnapshots" => [new ListSnapshotsRequest { Parent = Run, PageSize = 2, View = SnapshotView.Full }],
        "distill.distiller.v1.DistillerService.GetSnapshot" => [new GetSnapshotRequest { Name = Run + "/snapshots/2", View = SnapshotView.Full }],
        "distill.distiller.v1.DistillerService.ExportRun" => [new ExportRunRequest { Name = Run, Format = ExportFormat.Npz, Step = 2 }],
        "distill.distiller.v1.DistillerService.EvaluateRun" => [new EvaluateRunRequest { Name = Run, Kernel = Kernel(), Step = 2 }],
        "distill.distiller.v1.DistillerService.ListKernelServices" => [new ListKernelServicesRequest()],
        "distill.distiller.v1.DistillerService.ListDatasets" => [new DistillerListDatasetsRequest()],
        _ => throw new ArgumentException($"no valid request for {method}", nameof(method)),
    };

    // Myrtle-5 reads the 4 x 4 images (two poolings).
    private static RandomFeatureConvSpec PoolNetworks() => new()
        { Architecture = ConvArchitecture.Myrtle5, ImageChannels = 1, ImageHeight = 4, ImageWidth = 4, Networks = 2, Width = 4, Seed = 1 };

    private static KernelSpec Kernel() => new() { FullyConnected = new FullyConnectedSpec { Kind = KernelKind.Ntk, Depth = 1, WStd = 1.4, BStd = 0.1 } };

    private static Operand Inline(int count) => new() { Inline = Tensor([count, .. ImageShape]) };

    private Operand Rows(int count) => new() { Rows = new DatasetRows { Dataset = Dataset, Split = Split.Train, Ranges = { new IndexRange { Start = 0, Count = count - 1 } }, Indices = { count - 1 } } };

    /// <summary>A float32 tensor of the shape, values in [0, 1).</summary>
    private static Protos.Kernel.V1.Tensor Tensor(long[] shape)
    {
        var random = new Random(shape.Length);
        var values = Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(_ => random.NextSingle()).ToArray();
        return new Protos.Kernel.V1.Tensor { Shape = { shape }, Dtype = DataType.Float32, Data = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
    }

    private static IReadOnlyList<IMessage> Upload()
    {
        var header = new UploadDatasetHeader { DisplayName = "fuzz", ClassCount = Classes, ImageShape = { ImageShape } };
        return
        [
            new UploadDatasetRequest { Header = header, Split = Split.Train, Features = Tensor([6, .. ImageShape]), Labels = { 0, 1, 2, 0, 1, 2 } },
            new UploadDatasetRequest { Split = Split.Train, Features = Tensor([6, .. ImageShape]), Labels = { 2, 1, 0, 2, 1, 0 } },
            new UploadDatasetRequest { Split = Split.Test, Features = Tensor([3, .. ImageShape]), Labels = { 0, 1, 2 } },
        ];
    }
}
