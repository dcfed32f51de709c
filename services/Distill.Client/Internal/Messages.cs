using Distill.Protos.Distiller.V1;
using Timestamp = Google.Protobuf.WellKnownTypes.Timestamp;
using Proto = Distill.Protos.Distiller.V1;
using KernelProto = Distill.Protos.Kernel.V1;

namespace Distill.Client.Internal;

/// <summary>Generated messages to and from the client's records; nothing generated leaves this class.</summary>
internal static class Messages
{
    public static RunSpec ToProto(RunSpecification spec)
    {
        var message = new RunSpec
        {
            Dataset = spec.Dataset,
            Format = ToProto(spec.Format),
            Method = spec.Method == DistillationMethod.LabelSolve ? Method.LabelSolve : Method.Kip,
            Kernel = spec.Kernel is null ? null : ToProto(spec.Kernel),
            SupportPerClass = spec.SupportPerClass,
            Steps = spec.Steps,
            FixedLabels = spec.FixedLabels,
            Preprocessing = spec.Preprocessing is { } p
                ? new KernelProto.Preprocessing { Standardize = p.Standardize, Zca = p.Zca }
                : null,
            Seed = spec.Seed,
            Initialization = spec.Initialization == SupportInitialization.Noise ? Initialization.Noise : Initialization.Real,
        };
        // Optional fields are set only when given, so the server's defaults apply otherwise.
        if (spec.Preprocessing?.ZcaRegularization is { } zca) message.Preprocessing!.ZcaRegularization = zca;
        if (spec.LearningRate is { } lr) message.LearningRate = lr;
        if (spec.TargetBatch is { } batch) message.TargetBatch = batch;
        if (spec.EvaluateEvery is { } evaluate) message.EvaluateEvery = evaluate;
        if (spec.CheckpointEvery is { } checkpoint) message.CheckpointEvery = checkpoint;
        if (spec.Regularization is { } reg) message.Regularization = reg;
        if (spec.FeaturePool is { } pool) message.FeaturePool = ToProto(pool);
        return message;
    }

    public static TransferSpec ToProto(TransferSpecification spec)
    {
        var message = new TransferSpec { Protocol = spec.Protocol == TransferProtocolKind.Standard ? TransferProtocol.Standard : TransferProtocol.Kernel };
        if (spec.Seeds is { } seeds) message.Seeds = seeds;
        if (spec.Width is { } width) message.Width = width;
        if (spec.Epochs is { } epochs) message.Epochs = epochs;
        if (spec.LearningRate is { } lr) message.LearningRate = lr;
        if (spec.HeldOut is { } heldOut) message.HeldOut = heldOut;
        if (spec.EvalEvery is { } every) message.EvalEvery = every;
        if (spec.Patience is { } patience) message.Patience = patience;
        if (spec.MaxTest is { } maxTest) message.MaxTest = maxTest;
        return message;
    }

    public static TransferEvaluation FromProto(EvaluateRunResponse response)
    {
        var transfer = response.Transfer;
        var spec = transfer.Spec ?? new TransferSpec();
        return new TransferEvaluation(response.TestAccuracy, transfer.TestAccuracyStd, response.Step,
            transfer.Seeds.Select(s => new TransferSeedResult(s.Seed, s.TestAccuracy, s.Epochs, s.BestEpoch)).ToArray(),
            new TransferSpecification
            {
                Protocol = spec.Protocol == TransferProtocol.Standard ? TransferProtocolKind.Standard : TransferProtocolKind.Kernel,
                Seeds = spec.HasSeeds ? spec.Seeds : null,
                Width = spec.HasWidth ? spec.Width : null,
                Epochs = spec.HasEpochs ? spec.Epochs : null,
                LearningRate = spec.HasLearningRate ? spec.LearningRate : null,
                HeldOut = spec.HasHeldOut ? spec.HeldOut : null,
                EvalEvery = spec.HasEvalEvery ? spec.EvalEvery : null,
                Patience = spec.HasPatience ? spec.Patience : null,
                MaxTest = spec.HasMaxTest ? spec.MaxTest : null,
            },
            transfer.TestCount, TimeSpan.FromSeconds(transfer.Seconds));
    }

    private static FeaturePoolSpec ToProto(FeaturePoolSpecification pool)
    {
        var message = new FeaturePoolSpec
        {
            NetworkSeed = pool.NetworkSeed, Mirror = pool.Mirror,
            Loss = pool.Loss == PoolLoss.Platt ? KernelProto.PoolLoss.Platt : KernelProto.PoolLoss.Mse,
        };
        if (pool.PoolSize is { } size) message.PoolSize = size;
        if (pool.PoolSample is { } sample) message.PoolSample = sample;
        if (pool.Width is { } width) message.Width = width;
        if (pool.TargetSubset is { } subset) message.TargetSubset = subset;
        if (pool.HeldOutNetworks is { } heldOut) message.HeldOutNetworks = heldOut;
        if (pool.ValidationPerClass is { } validation) message.ValidationPerClass = validation;
        if (pool.ValidateEvery is { } every) message.ValidateEvery = every;
        if (pool.TestSubset is { } testSubset) message.TestSubset = testSubset;
        return message;
    }

    private static FeaturePoolSpecification FromProto(FeaturePoolSpec pool) => new()
    {
        PoolSize = pool.HasPoolSize ? pool.PoolSize : null,
        PoolSample = pool.HasPoolSample ? pool.PoolSample : null,
        Width = pool.HasWidth ? pool.Width : null,
        NetworkSeed = pool.NetworkSeed,
        TargetSubset = pool.HasTargetSubset ? pool.TargetSubset : null,
        HeldOutNetworks = pool.HasHeldOutNetworks ? pool.HeldOutNetworks : null,
        ValidationPerClass = pool.HasValidationPerClass ? pool.ValidationPerClass : null,
        ValidateEvery = pool.HasValidateEvery ? pool.ValidateEvery : null,
        Loss = pool.Loss == KernelProto.PoolLoss.Platt ? PoolLoss.Platt : PoolLoss.Mse,
        Mirror = pool.Mirror,
        TestSubset = pool.HasTestSubset ? pool.TestSubset : null,
    };

    public static RunSpecification FromProto(RunSpec? spec)
    {
        spec ??= new RunSpec();
        return new RunSpecification
        {
            Dataset = spec.Dataset,
            Format = FromProto(spec.Format),
            Method = spec.Method == Method.LabelSolve ? DistillationMethod.LabelSolve : DistillationMethod.Kip,
            Kernel = spec.Kernel is null ? null : FromProto(spec.Kernel),
            SupportPerClass = spec.SupportPerClass,
            Steps = spec.Steps,
            LearningRate = spec.HasLearningRate ? spec.LearningRate : null,
            TargetBatch = spec.HasTargetBatch ? spec.TargetBatch : null,
            FixedLabels = spec.FixedLabels,
            Preprocessing = spec.Preprocessing is { } p
                ? new PreprocessingSpecification(p.Standardize, p.Zca, p.HasZcaRegularization ? p.ZcaRegularization : null)
                : null,
            Seed = spec.Seed,
            EvaluateEvery = spec.HasEvaluateEvery ? spec.EvaluateEvery : null,
            CheckpointEvery = spec.HasCheckpointEvery ? spec.CheckpointEvery : null,
            Regularization = spec.HasRegularization ? spec.Regularization : null,
            Initialization = spec.Initialization == Initialization.Noise ? SupportInitialization.Noise : SupportInitialization.Real,
            FeaturePool = spec.FeaturePool is null ? null : FromProto(spec.FeaturePool),
        };
    }

    public static KernelProto.KernelSpec ToProto(KernelSpecification kernel)
    {
        var kind = kernel.Kind == KernelKind.Nngp ? KernelProto.KernelKind.Nngp : KernelProto.KernelKind.Ntk;
        switch (kernel.Architecture)
        {
            case KernelSpecification.FullyConnected:
                var fc = new KernelProto.FullyConnectedSpec { Kind = kind };
                if (kernel.Depth is { } depth) fc.Depth = depth;
                if (kernel.WStd is { } w) fc.WStd = w;
                if (kernel.BStd is { } b) fc.BStd = b;
                return new KernelProto.KernelSpec { FullyConnected = fc };
            case KernelSpecification.Convolutional:
                var conv = new KernelProto.ConvolutionalSpec
                {
                    Architecture = ToProto(kernel.Network), Kind = kind, Readout = ToProto(kernel.Readout),
                    ImageChannels = kernel.ImageChannels, ImageHeight = kernel.ImageHeight, ImageWidth = kernel.ImageWidth,
                };
                if (kernel.WStd is { } convW) conv.WStd = convW;
                if (kernel.BStd is { } convB) conv.BStd = convB;
                return new KernelProto.KernelSpec { Convolutional = conv };
            case KernelSpecification.RandomFeatures:
                // NNGP only: the message has no kind.
                var rf = new KernelProto.RandomFeatureConvSpec
                {
                    Architecture = ToProto(kernel.Network), Readout = ToProto(kernel.Readout),
                    ImageChannels = kernel.ImageChannels, ImageHeight = kernel.ImageHeight, ImageWidth = kernel.ImageWidth, Seed = kernel.Seed,
                };
                if (kernel.WStd is { } rfW) rf.WStd = rfW;
                if (kernel.BStd is { } rfB) rf.BStd = rfB;
                if (kernel.Networks is { } networks) rf.Networks = networks;
                if (kernel.Width is { } width) rf.Width = width;
                return new KernelProto.KernelSpec { RandomFeatures = rf };
            default:
                throw new ArgumentException($"kernel architecture '{kernel.Architecture}' is not one this client can send", nameof(kernel));
        }
    }

    public static KernelSpecification FromProto(KernelProto.KernelSpec kernel) => kernel.ArchitectureCase switch
    {
        // Unset means a fully connected kernel with every default.
        KernelProto.KernelSpec.ArchitectureOneofCase.None => new KernelSpecification(),
        KernelProto.KernelSpec.ArchitectureOneofCase.FullyConnected => new KernelSpecification(
            KernelSpecification.FullyConnected,
            FromProto(kernel.FullyConnected.Kind),
            kernel.FullyConnected.HasDepth ? kernel.FullyConnected.Depth : null,
            kernel.FullyConnected.HasWStd ? kernel.FullyConnected.WStd : null,
            kernel.FullyConnected.HasBStd ? kernel.FullyConnected.BStd : null),
        KernelProto.KernelSpec.ArchitectureOneofCase.Convolutional => new KernelSpecification(
            KernelSpecification.Convolutional,
            FromProto(kernel.Convolutional.Kind),
            WStd: kernel.Convolutional.HasWStd ? kernel.Convolutional.WStd : null,
            BStd: kernel.Convolutional.HasBStd ? kernel.Convolutional.BStd : null)
        {
            Network = FromProto(kernel.Convolutional.Architecture), Readout = FromProto(kernel.Convolutional.Readout),
            ImageChannels = kernel.Convolutional.ImageChannels, ImageHeight = kernel.Convolutional.ImageHeight,
            ImageWidth = kernel.Convolutional.ImageWidth,
        },
        KernelProto.KernelSpec.ArchitectureOneofCase.RandomFeatures => new KernelSpecification(
            KernelSpecification.RandomFeatures,
            KernelKind.Nngp,
            WStd: kernel.RandomFeatures.HasWStd ? kernel.RandomFeatures.WStd : null,
            BStd: kernel.RandomFeatures.HasBStd ? kernel.RandomFeatures.BStd : null)
        {
            Network = FromProto(kernel.RandomFeatures.Architecture), Readout = FromProto(kernel.RandomFeatures.Readout),
            ImageChannels = kernel.RandomFeatures.ImageChannels, ImageHeight = kernel.RandomFeatures.ImageHeight,
            ImageWidth = kernel.RandomFeatures.ImageWidth,
            Networks = kernel.RandomFeatures.HasNetworks ? kernel.RandomFeatures.Networks : null,
            Width = kernel.RandomFeatures.HasWidth ? kernel.RandomFeatures.Width : null,
            Seed = kernel.RandomFeatures.Seed,
        },
        var other => new KernelSpecification(other.ToString()),
    };

    private static KernelKind FromProto(KernelProto.KernelKind kind) => kind == KernelProto.KernelKind.Nngp ? KernelKind.Nngp : KernelKind.Ntk;

    private static KernelProto.ConvArchitecture ToProto(ConvolutionalNetwork network) => network switch
    {
        ConvolutionalNetwork.ConvNet => KernelProto.ConvArchitecture.ConvNet,
        ConvolutionalNetwork.ConvNet3 => KernelProto.ConvArchitecture.ConvNet3,
        ConvolutionalNetwork.Myrtle5 => KernelProto.ConvArchitecture.Myrtle5,
        _ => throw new ArgumentException($"unknown convolutional network {network}", nameof(network)),
    };

    // An architecture this client does not know reads as ConvNet; the server always sends one it accepted.
    private static ConvolutionalNetwork FromProto(KernelProto.ConvArchitecture architecture) => architecture switch
    {
        KernelProto.ConvArchitecture.ConvNet3 => ConvolutionalNetwork.ConvNet3,
        KernelProto.ConvArchitecture.Myrtle5 => ConvolutionalNetwork.Myrtle5,
        _ => ConvolutionalNetwork.ConvNet,
    };

    private static KernelProto.ConvReadout ToProto(ConvolutionalReadout readout) =>
        readout == ConvolutionalReadout.GlobalAveragePool ? KernelProto.ConvReadout.GlobalAveragePool : KernelProto.ConvReadout.Flatten;

    private static ConvolutionalReadout FromProto(KernelProto.ConvReadout readout) =>
        readout == KernelProto.ConvReadout.GlobalAveragePool ? ConvolutionalReadout.GlobalAveragePool : ConvolutionalReadout.Flatten;

    public static RunInfo FromProto(Run run)
    {
        var spec = FromProto(run.Spec);
        return new RunInfo(
            RunNames.ToId(run.Name), run.Name, FromProto(run.State), run.StateMessage, spec,
            run.Step, spec.Steps,
            run.HasLastLoss ? run.LastLoss : null,
            run.HasTestAccuracy ? run.TestAccuracy : null,
            run.HasBestTestAccuracy ? run.BestTestAccuracy : null,
            run.HasCheckpointStep ? run.CheckpointStep : null,
            run.StepsPerSecond,
            Time(run.CreateTime), Time(run.UpdateTime),
            run.RequestId.Length == 0 ? null : run.RequestId);
    }

    public static RunStatus FromProto(RunState state) => state switch
    {
        RunState.Queued => RunStatus.Queued,
        RunState.Running => RunStatus.Running,
        RunState.Paused => RunStatus.Paused,
        RunState.Succeeded => RunStatus.Succeeded,
        RunState.Failed => RunStatus.Failed,
        RunState.Cancelled => RunStatus.Cancelled,
        // A state newer than this client passes through as its number rather than failing the call.
        _ => (RunStatus)(int)state,
    };

    private static RunPhase FromProto(Proto.RunPhase phase) => phase switch
    {
        Proto.RunPhase.Evaluation => RunPhase.Evaluation,
        Proto.RunPhase.LabelSolve => RunPhase.LabelSolve,
        Proto.RunPhase.FeaturePoolSetup => RunPhase.FeaturePoolSetup,
        Proto.RunPhase.SupportGram => RunPhase.SupportGram,
        _ => RunPhase.Unspecified,
    };

    public static RunState ToProto(RunStatus status) => status switch
    {
        RunStatus.Queued => RunState.Queued,
        RunStatus.Running => RunState.Running,
        RunStatus.Paused => RunState.Paused,
        RunStatus.Succeeded => RunState.Succeeded,
        RunStatus.Failed => RunState.Failed,
        RunStatus.Cancelled => RunState.Cancelled,
        _ => (RunState)(int)status,
    };

    public static ListRunsRequest ToProto(ListRunsQuery query) => new()
    {
        PageSize = query.PageSize ?? 0,
        PageToken = query.PageToken ?? "",
        States = { (query.States ?? []).Select(ToProto) },
        Dataset = query.Dataset ?? "",
        Methods = { (query.Methods ?? []).Select(m => m == DistillationMethod.LabelSolve ? Method.LabelSolve : Method.Kip) },
        OrderBy = query.Order switch
        {
            RunOrder.CreateTimeDescending => "create_time desc",
            RunOrder.CreateTime => "create_time",
            RunOrder.UpdateTimeDescending => "update_time desc",
            RunOrder.UpdateTime => "update_time",
            _ => "",
        },
    };

    public static RunEventRecord FromProto(RunEvent e)
    {
        var time = Time(e.Time);
        return e.EventCase switch
        {
            RunEvent.EventOneofCase.State => new StateChangedEvent(e.Sequence, time, FromProto(e.State.State), e.State.Message),
            RunEvent.EventOneofCase.Progress => new StepEvent(e.Sequence, time, e.Progress.Step, e.Progress.TotalSteps, e.Progress.Loss, e.Progress.StepsPerSecond),
            RunEvent.EventOneofCase.Evaluation => new EvaluationEvent(e.Sequence, time, e.Evaluation.Step, e.Evaluation.TestAccuracy, e.Evaluation.TestMse),
            RunEvent.EventOneofCase.Checkpoint => new CheckpointEvent(e.Sequence, time, e.Checkpoint.Step, e.Checkpoint.Snapshot),
            RunEvent.EventOneofCase.Phase => new PhaseEvent(e.Sequence, time, FromProto(e.Phase.Phase), e.Phase.Step, e.Phase.Done, e.Phase.Total,
                e.Phase.Elapsed?.ToTimeSpan() ?? TimeSpan.Zero),
            _ => new UnrecognizedEvent(e.Sequence, time),
        };
    }

    public static SnapshotInfo FromProto(Snapshot s) => new(
        s.Name, s.Step, Time(s.CreateTime),
        Tensors.Decode(s.Images), Tensors.Decode(s.PreprocessedImages), Tensors.Decode(s.Labels),
        s.Classes.ToArray(), s.ClassNames.ToArray());

    public static Proto.ExportFormat ToProto(ExportFormat format) => format switch
    {
        ExportFormat.Safetensors => Proto.ExportFormat.Safetensors,
        ExportFormat.Npz => Proto.ExportFormat.Npz,
        ExportFormat.PngGrid => Proto.ExportFormat.PngGrid,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    public static KernelServiceInfo FromProto(KernelServiceStatus k) => new(
        k.Address, k.Reachable, k.Error.Length == 0 ? null : k.Error, k.Version, k.Device, k.Threads,
        k.CallsInFlight, k.MaxConcurrentRequests,
        k.RecentComputeTime?.ToTimeSpan(), k.RecentTransportTime?.ToTimeSpan(),
        k.Runs.ToArray(), k.CheckTime?.ToDateTimeOffset());

    public static DatasetFolderInfo FromProto(DatasetFolder d) => new(d.Path, FromProto(d.Format));

    public static KernelProto.DatasetFormat ToProto(DatasetFormat format) => format switch
    {
        DatasetFormat.Idx => KernelProto.DatasetFormat.Idx,
        DatasetFormat.Cifar10 => KernelProto.DatasetFormat.Cifar10,
        DatasetFormat.Cifar100 => KernelProto.DatasetFormat.Cifar100,
        DatasetFormat.ImageFolder => KernelProto.DatasetFormat.ImageFolder,
        _ => KernelProto.DatasetFormat.Unspecified,
    };

    public static DatasetFormat FromProto(KernelProto.DatasetFormat format) => format switch
    {
        KernelProto.DatasetFormat.Idx => DatasetFormat.Idx,
        KernelProto.DatasetFormat.Cifar10 => DatasetFormat.Cifar10,
        KernelProto.DatasetFormat.Cifar100 => DatasetFormat.Cifar100,
        KernelProto.DatasetFormat.ImageFolder => DatasetFormat.ImageFolder,
        _ => DatasetFormat.Detect,
    };

    /// <summary>Unset timestamps (never expected from the server) read as the epoch.</summary>
    private static DateTimeOffset Time(Timestamp? time) => time?.ToDateTimeOffset() ?? DateTimeOffset.UnixEpoch;
}
