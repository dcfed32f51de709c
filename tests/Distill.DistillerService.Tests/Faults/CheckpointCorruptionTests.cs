using Distill.Core.Checkpoints;
using Distill.Core.Distillation;
using Distill.Protos.Distiller.V1;
using Grpc.Net.Client;

using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.DistillerService.Tests.Faults;

/// <summary>A checkpoint damaged on disk while the distiller is stopped: the resume notices, says so and uses the one before.</summary>
public sealed class CheckpointCorruptionTests : IDisposable
{
    private readonly ProcessCluster _cluster = new();

    private static RunSpec Spec() => new()
    {
        Dataset = TinyDataset.Name, SupportPerClass = 2, Steps = 60, TargetBatch = 1000, LearningRate = 0.05, CheckpointEvery = 5, Seed = 17,
    };

    public static TheoryData<string> Damages => ["flip", "truncate"];

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task NewestCheckpoint_DamagedWhileStopped_ResumesFromThePreviousOneAndEndsLikeAnUndisturbedRun(string damage)
    {
        await using var kernel = await _cluster.StartKernelAsync(ServiceProcess.FreePort());
        string id;
        await using (var first = await _cluster.StartDistillerAsync(kernel.Address))
        {
            using var channel = GrpcChannel.ForAddress(first.Address);
            var client = new DistillerClient(channel);
            id = (await client.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
            await ProcessCluster.WatchUntilAsync(client, id, e => e.Checkpoint?.Step >= 20);
            first.Kill();
        }
        var latest = Path.Combine(_cluster.RunFolder(id), CheckpointFiles.Latest);
        long previousStep;
        using (var previous = KipState.Load(Path.Combine(_cluster.RunFolder(id), CheckpointFiles.Previous))) previousStep = previous.Step;
        Damage(latest, damage);

        await using var second = await _cluster.StartDistillerAsync(kernel.Address);
        using var secondChannel = GrpcChannel.ForAddress(second.Address);
        var secondClient = new DistillerClient(secondChannel);
        var events = await ProcessCluster.WatchToEndAsync(secondClient, id);
        Assert.Equal(RunState.Succeeded, events[^1].State.State);
        var rejected = Assert.Single(events, e => e.State?.Message.StartsWith($"checkpoint {CheckpointFiles.Latest} is unusable", StringComparison.Ordinal) == true);
        Assert.Contains(damage == "flip" ? "checksum mismatch" : "does not", rejected.State.Message);
        Assert.DoesNotContain(_cluster.DataFolder, rejected.State.Message);
        Assert.Contains(events, e => e.State?.Message == $"resumed from step {previousStep}");

        var undisturbed = (await secondClient.StartRunAsync(new StartRunRequest { Spec = Spec() })).Name;
        Assert.Equal(RunState.Succeeded, (await ProcessCluster.WatchToEndAsync(secondClient, undisturbed))[^1].State.State);
        Assert.Equal(_cluster.Support(undisturbed, Spec().Steps), _cluster.Support(id, Spec().Steps));
    }

    /// <summary>A flipped bit in the last tensor's bytes, or the file cut in half.</summary>
    private static void Damage(string path, string damage)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        if (damage == "truncate")
        {
            file.SetLength(file.Length / 2);
            return;
        }
        file.Seek(-1, SeekOrigin.End);
        var last = file.ReadByte();
        file.Seek(-1, SeekOrigin.End);
        file.WriteByte((byte)(last ^ 0x01));
    }

    public void Dispose() => _cluster.Dispose();
}
