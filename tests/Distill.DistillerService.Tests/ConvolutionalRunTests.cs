using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using Google.Rpc;
using Grpc.Core;

namespace Distill.DistillerService.Tests;

/// <summary>
/// KIP runs with a convolutional kernel, end to end over real kernel services (RemoteKipBackend),
/// on the tiny 1 x 8 x 8 dataset: ConvNet's three poolings leave one pixel, so steps take
/// a fraction of a second.
/// </summary>
public class ConvolutionalRunTests
{
    private static KernelSpec ConvNet(int channels = 1, int height = 8, int width = 8) => new()
    {
        Convolutional = new ConvolutionalSpec
        {
            Architecture = ConvArchitecture.ConvNet, Kind = Protos.Kernel.V1.KernelKind.Ntk,
            ImageChannels = channels, ImageHeight = height, ImageWidth = width,
        },
    };

    // 20 targets x 10 support images per step keeps a step well under a second on a shared CPU.
    private static RunSpec Spec(KernelSpec kernel, int steps = 6)
    {
        var spec = LoopbackCluster.Spec(steps);
        spec.Kernel = kernel;
        spec.TargetBatch = 20;
        spec.EvaluateEvery = steps;
        return spec;
    }

    [Fact]
    public async Task StartRun_ConvNetKernel_SucceedsAndLowersTheLoss()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = Spec(ConvNet()) });
        // Exact ConvNet kernels over the tiny dataset's test split take minutes on two busy cores.
        var events = await cluster.WatchToEndAsync(run.Name, timeout: TimeSpan.FromMinutes(10));

        Assert.True(RunState.Succeeded == events[^1].State.State, events[^1].State.Message);
        var losses = events.Where(e => e.Progress is not null).Select(e => e.Progress.Loss).ToList();
        Assert.Equal(6, losses.Count);
        Assert.True(losses.TakeLast(3).Average() < losses.Take(3).Average(), $"KIP with a ConvNet kernel must lower the loss: {losses[0]:G4} -> {losses[^1]:G4}");
        Assert.Contains(events, e => e.Evaluation is not null);
        // The stored spec keeps the convolutional kernel, its defaults made explicit.
        var stored = (await cluster.Client.GetRunAsync(new GetRunRequest { Name = run.Name })).Spec.Kernel;
        Assert.Equal(ConvArchitecture.ConvNet, stored.Convolutional.Architecture);
        Assert.True(stored.Convolutional.HasWStd && stored.Convolutional.HasBStd);
        Assert.Equal(ConvReadout.Flatten, stored.Convolutional.Readout);

        // Evaluating under a kernel for images of another shape is refused, naming the field.
        var error = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.EvaluateRunAsync(new EvaluateRunRequest
        {
            Name = run.Name, Kernel = ConvNet(width: 16),
        }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("kernel.convolutional.image_width", Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task StartRun_ConvNetKernelForAnotherImageShape_FailsNamingTheField()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var run = await cluster.Client.StartRunAsync(new StartRunRequest { Spec = Spec(ConvNet(height: 16)) });
        var events = await cluster.WatchToEndAsync(run.Name);

        Assert.Equal(RunState.Failed, events[^1].State.State);
        Assert.StartsWith("spec.kernel.convolutional.image_height:", events[^1].State.Message);
        Assert.DoesNotContain(events, e => e.Progress is not null);
    }

    [Fact]
    public async Task StartRun_BadConvolutionalField_IsInvalidArgumentNamingIt()
    {
        await using var cluster = await LoopbackCluster.StartAsync();
        var kernel = ConvNet();
        kernel.Convolutional.Architecture = ConvArchitecture.Unspecified;

        var error = await Assert.ThrowsAsync<RpcException>(() => cluster.Client.StartRunAsync(new StartRunRequest { Spec = Spec(kernel) }).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("spec.kernel.convolutional.architecture", Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }
}
