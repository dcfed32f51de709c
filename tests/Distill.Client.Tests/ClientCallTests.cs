using System.Buffers.Binary;
using Distill.Protos.Distiller.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using KernelProto = Distill.Protos.Kernel.V1;

namespace Distill.Client.Tests;

public class ClientCallTests
{
    private static readonly Timestamp Now = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    private static Run SampleRun(RunSpec spec) => new()
    {
        Name = "runs/run-abc", Spec = spec, State = RunState.Running, Step = 7, TestAccuracy = 0.5,
        StepsPerSecond = 2, CreateTime = Now, UpdateTime = Now, RequestId = "req-1",
    };

    [Fact]
    public async Task StartRun_sends_only_the_optional_fields_given_and_the_kernel_oneof_with_the_key()
    {
        var invoker = new FakeInvoker((_, request) => SampleRun(((StartRunRequest)request).Spec));
        var client = new DistillerClient(invoker, apiKey: "secret");
        var spec = new RunSpecification
        {
            Dataset = "mnist", SupportPerClass = 2, Steps = 40, TargetBatch = 200,
            Kernel = new KernelSpecification(Kind: KernelKind.Nngp, Depth: 3),
        };

        var run = await client.StartRunAsync(spec, "req-1");

        var (method, sent, headers) = Assert.Single(invoker.Calls);
        var request = (StartRunRequest)sent;
        Assert.Equal("StartRun", method);
        Assert.Equal("req-1", request.RequestId);
        Assert.Equal("Bearer secret", headers?.GetValue("authorization"));
        Assert.True(request.Spec.HasTargetBatch);
        Assert.False(request.Spec.HasLearningRate);
        Assert.False(request.Spec.HasCheckpointEvery);
        Assert.Equal(KernelProto.KernelSpec.ArchitectureOneofCase.FullyConnected, request.Spec.Kernel.ArchitectureCase);
        Assert.Equal(KernelProto.KernelKind.Nngp, request.Spec.Kernel.FullyConnected.Kind);
        Assert.Equal(3, request.Spec.Kernel.FullyConnected.Depth);
        Assert.False(request.Spec.Kernel.FullyConnected.HasWStd);

        Assert.Equal("run-abc", run.Id);
        Assert.Equal("runs/run-abc", run.Name);
        Assert.Equal(RunStatus.Running, run.State);
        Assert.Equal(spec, run.Spec);
        Assert.Equal(40, run.TotalSteps);
        Assert.Equal(0.5, run.TestAccuracy);
        Assert.Null(run.BestTestAccuracy);
        Assert.Null(run.CheckpointStep);
        Assert.Null(run.LastLoss);
        Assert.Equal(Now.ToDateTimeOffset(), run.CreateTime);
    }

    public static TheoryData<KernelSpecification> ConvolutionalKernels() => new(
        KernelSpecification.ConvolutionalKernel(ConvolutionalNetwork.Myrtle5, 3, 32, 16, KernelKind.Nngp, ConvolutionalReadout.GlobalAveragePool) with { WStd = 1.5 },
        KernelSpecification.ConvolutionalKernel(ConvolutionalNetwork.ConvNet, 1, 28, 28),
        KernelSpecification.RandomFeatureKernel(ConvolutionalNetwork.ConvNet3, 1, 8, 8, networks: 4, width: 64, seed: 9) with { BStd = 0 },
        KernelSpecification.RandomFeatureKernel(ConvolutionalNetwork.ConvNet, 3, 32, 32));

    [Theory]
    [MemberData(nameof(ConvolutionalKernels))]
    public async Task StartRun_with_a_convolutional_kernel_sends_its_oneof_member_and_reads_it_back(KernelSpecification kernel)
    {
        var invoker = new FakeInvoker((_, request) => SampleRun(((StartRunRequest)request).Spec));
        var client = new DistillerClient(invoker);
        var spec = new RunSpecification { Dataset = "cifar10", Kernel = kernel };

        var run = await client.StartRunAsync(spec, "");

        var sent = ((StartRunRequest)Assert.Single(invoker.Calls).Request).Spec.Kernel;
        if (kernel.Architecture == KernelSpecification.Convolutional)
        {
            Assert.Equal(KernelProto.KernelSpec.ArchitectureOneofCase.Convolutional, sent.ArchitectureCase);
            Assert.Equal(kernel.ImageHeight, sent.Convolutional.ImageHeight);
            Assert.Equal(kernel.WStd is not null, sent.Convolutional.HasWStd);
        }
        else
        {
            Assert.Equal(KernelProto.KernelSpec.ArchitectureOneofCase.RandomFeatures, sent.ArchitectureCase);
            Assert.Equal(kernel.Networks is not null, sent.RandomFeatures.HasNetworks);
            Assert.Equal(kernel.Seed, sent.RandomFeatures.Seed);
        }
        Assert.Equal(spec, run.Spec);
    }

    [Fact]
    public async Task StartRun_with_a_feature_pool_sends_only_the_fields_given_and_reads_them_back()
    {
        var invoker = new FakeInvoker((_, request) => SampleRun(((StartRunRequest)request).Spec));
        var client = new DistillerClient(invoker);
        var spec = new RunSpecification
        {
            Dataset = "cifar10", Steps = 100,
            Kernel = KernelSpecification.ConvolutionalKernel(ConvolutionalNetwork.ConvNet3, 3, 32, 32, KernelKind.Nngp),
            FeaturePool = new FeaturePoolSpecification { PoolSize = 64, NetworkSeed = 5, ValidateEvery = 0, Loss = PoolLoss.Platt, Mirror = true },
        };

        var run = await client.StartRunAsync(spec, "");

        var sent = ((StartRunRequest)Assert.Single(invoker.Calls).Request).Spec.FeaturePool;
        Assert.Equal((64, 5UL, 0, KernelProto.PoolLoss.Platt, true), (sent.PoolSize, sent.NetworkSeed, sent.ValidateEvery, sent.Loss, sent.Mirror));
        Assert.True(sent.HasValidateEvery);
        Assert.False(sent.HasPoolSample || sent.HasWidth || sent.HasTargetSubset || sent.HasHeldOutNetworks || sent.HasValidationPerClass);
        Assert.Equal(spec, run.Spec);
    }

    [Fact]
    public async Task TransferRun_sends_a_transfer_evaluation_with_only_the_fields_given_and_reads_each_network_back()
    {
        var invoker = new FakeInvoker((_, request) =>
        {
            var sent = ((EvaluateRunRequest)request).Transfer;
            var response = new EvaluateRunResponse
            {
                TestAccuracy = 0.4, Step = 30,
                Transfer = new TransferResult
                {
                    TestAccuracyStd = 0.1, TestCount = 200, Seconds = 12.5,
                    Spec = new TransferSpec { Protocol = sent.Protocol, Seeds = 2, Width = sent.Width, Epochs = 300, LearningRate = 0.01, MaxTest = 200 },
                },
            };
            response.Transfer.Seeds.Add(new Protos.Distiller.V1.TransferSeedResult { Seed = 0, TestAccuracy = 0.3, Epochs = 300, BestEpoch = 300 });
            response.Transfer.Seeds.Add(new Protos.Distiller.V1.TransferSeedResult { Seed = 1, TestAccuracy = 0.5, Epochs = 300, BestEpoch = 300 });
            return response;
        });
        var client = new DistillerClient(invoker);

        var result = await client.TransferRunAsync("run-abc", new TransferSpecification { Protocol = TransferProtocolKind.Standard, Width = 32 }, step: 30);

        var request = (EvaluateRunRequest)Assert.Single(invoker.Calls).Request;
        Assert.Equal(("runs/run-abc", 30L, (KernelProto.KernelSpec?)null), (request.Name, request.Step, request.Kernel));
        Assert.Equal(TransferProtocol.Standard, request.Transfer.Protocol);
        Assert.Equal(32, request.Transfer.Width);
        Assert.False(request.Transfer.HasSeeds);
        Assert.False(request.Transfer.HasEpochs);

        Assert.Equal((0.4, 0.1, 30L, 200, TimeSpan.FromSeconds(12.5)), (result.TestAccuracy, result.TestAccuracyStd, result.Step, result.TestCount, result.Duration));
        Assert.Equal([new TransferSeedResult(0, 0.3, 300, 300), new TransferSeedResult(1, 0.5, 300, 300)], result.Seeds);
        Assert.Equal(new TransferSpecification { Protocol = TransferProtocolKind.Standard, Seeds = 2, Width = 32, Epochs = 300, LearningRate = 0.01, MaxTest = 200 },
            result.Spec);
    }

    [Fact]
    public async Task Calls_by_bare_id_send_the_resource_name_and_errors_arrive_decoded()
    {
        var status = new Google.Rpc.Status { Code = (int)Google.Rpc.Code.NotFound, Message = "no such run" };
        status.Details.Add(Any.Pack(new Google.Rpc.ErrorInfo { Reason = "RUN_NOT_FOUND", Domain = "distill" }));
        var invoker = new FakeInvoker((_, _) => status.ToRpcException());
        var client = new DistillerClient(invoker);

        var error = await Assert.ThrowsAsync<DistillerException>(() => client.ResumeRunAsync("run-zzz", steps: 80));

        var request = (ResumeRunRequest)Assert.Single(invoker.Calls).Request;
        Assert.Equal("runs/run-zzz", request.Name);
        Assert.Equal(80, request.Steps);
        Assert.Null(Assert.Single(invoker.Calls).Headers?.GetValue("authorization"));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Equal("RUN_NOT_FOUND", error.Reason);
    }

    [Fact]
    public async Task WatchRun_maps_each_event_kind_and_surfaces_the_stream_end_status()
    {
        object[] stream =
        [
            new RunEvent { Sequence = 4, Time = Now, State = new StateChanged { State = RunState.Running, Message = "started" } },
            new RunEvent { Sequence = 5, Time = Now, Progress = new StepProgress { Step = 1, TotalSteps = 40, Loss = 0.25, StepsPerSecond = 3 } },
            new RunEvent { Sequence = 6, Time = Now, Evaluation = new EvaluationDone { Step = 1, TestAccuracy = 0.8, TestMse = 0.1 } },
            new RunEvent { Sequence = 7, Time = Now, Checkpoint = new CheckpointDone { Step = 1, Snapshot = "runs/run-abc/snapshots/1" } },
            new RunEvent { Sequence = 8, Time = Now },
            new RunEvent
            {
                Sequence = 9, Time = Now,
                Phase = new PhaseProgress { Phase = Protos.Distiller.V1.RunPhase.LabelSolve, Step = 0, Done = 2000, Total = 50000, Elapsed = Duration.FromTimeSpan(TimeSpan.FromSeconds(12)) },
            },
            new RunEvent
            {
                Sequence = 10, Time = Now,
                Phase = new PhaseProgress { Phase = Protos.Distiller.V1.RunPhase.FeaturePoolSetup, Done = 32, Total = 128, Elapsed = Duration.FromTimeSpan(TimeSpan.FromSeconds(90)) },
            },
            new RunEvent
            {
                Sequence = 11, Time = Now,
                Phase = new PhaseProgress { Phase = Protos.Distiller.V1.RunPhase.SupportGram, Step = 400, Done = 625, Total = 1275, Elapsed = Duration.FromTimeSpan(TimeSpan.FromSeconds(30)) },
            },
            new RpcException(new Grpc.Core.Status(StatusCode.Cancelled, "run cancelled")),
        ];
        var invoker = new FakeInvoker((_, _) => stream);
        var client = new DistillerClient(invoker);
        var events = new List<RunEventRecord>();

        var error = await Assert.ThrowsAsync<DistillerException>(async () =>
        {
            await foreach (var e in client.WatchRunAsync("runs/run-abc", afterSequence: 3)) events.Add(e);
        });

        var request = (WatchRunRequest)Assert.Single(invoker.Calls).Request;
        Assert.Equal(("runs/run-abc", 3L, false), (request.Name, request.AfterSequence, request.Follow));
        var t = Now.ToDateTimeOffset();
        Assert.Equal<RunEventRecord>(
        [
            new StateChangedEvent(4, t, RunStatus.Running, "started"),
            new StepEvent(5, t, 1, 40, 0.25, 3),
            new EvaluationEvent(6, t, 1, 0.8, 0.1),
            new CheckpointEvent(7, t, 1, "runs/run-abc/snapshots/1"),
            new UnrecognizedEvent(8, t),
            new PhaseEvent(9, t, RunPhase.LabelSolve, 0, 2000, 50000, TimeSpan.FromSeconds(12)),
            new PhaseEvent(10, t, RunPhase.FeaturePoolSetup, 0, 32, 128, TimeSpan.FromSeconds(90)),
            new PhaseEvent(11, t, RunPhase.SupportGram, 400, 625, 1275, TimeSpan.FromSeconds(30)),
        ], events);
        var phases = events.OfType<PhaseEvent>().Select(p => (p.What, p.Unit));
        Assert.Equal([("Label Solve", "train images"), ("feature pool set-up", "networks"), ("support Gram at step 400", "image pairs")], phases);
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
    }

    [Fact]
    public async Task Snapshots_decode_their_tensors_and_exports_concatenate_chunks()
    {
        var pixels = new byte[2 * 1 * 2 * 2 * 4];
        for (var i = 0; i < 8; i++) BinaryPrimitives.WriteSingleLittleEndian(pixels.AsSpan(i * 4), i);
        var invoker = new FakeInvoker((method, _) => method switch
        {
            "GetSnapshot" => new Snapshot
            {
                Name = "runs/run-abc/snapshots/5", Step = 5, CreateTime = Now,
                Images = new KernelProto.Tensor { Shape = { 2, 1, 2, 2 }, Dtype = KernelProto.DataType.Float32, Data = ByteString.CopyFrom(pixels) },
                Classes = { 0, 1 }, ClassNames = { "zero", "one" },
            },
            "ExportRun" => new object[]
            {
                new FileChunk { FileName = "run-abc-step5.npz", TotalBytes = 5, Data = ByteString.CopyFromUtf8("PK") },
                new FileChunk { Data = ByteString.CopyFromUtf8("\u0003\u0004x") },
            },
            _ => throw new InvalidOperationException(method),
        });
        var client = new DistillerClient(invoker);

        var snapshot = await client.GetSnapshotAsync("run-abc", 5);
        var file = await client.ExportRunAsync("run-abc", ExportFormat.Npz, step: 5);

        var get = (GetSnapshotRequest)invoker.Calls[0].Request;
        Assert.Equal(("runs/run-abc/snapshots/5", SnapshotView.Full), (get.Name, get.View));
        Assert.Equal([2, 1, 2, 2], snapshot.Images!.Shape);
        Assert.Equal(7f, snapshot.Images[1, 0, 1, 1]);
        Assert.Null(snapshot.Labels);
        Assert.Equal(["zero", "one"], snapshot.ClassNames);
        var export = (ExportRunRequest)invoker.Calls[1].Request;
        Assert.Equal((Protos.Distiller.V1.ExportFormat.Npz, 5L), (export.Format, export.Step));
        Assert.Equal("run-abc-step5.npz", file.FileName);
        Assert.Equal("PK\u0003\u0004x"u8.ToArray(), file.Content);
    }
}
