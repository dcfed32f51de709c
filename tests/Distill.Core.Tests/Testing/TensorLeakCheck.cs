using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.Tests;

/// <summary>
/// Base class of tests that touch tensors: the test fails when it ends with more live
/// native tensors than it started with. What the test body itself creates on its own
/// thread is collected by a dispose scope opened here; what survives that is a tensor
/// made elsewhere (a worker thread, a cache, a tensor moved out of its scope) and never
/// disposed: a leak in the code under test. Test assemblies run sequentially, so the
/// process-wide count belongs to the running test alone; tensors that the GC finalises
/// meanwhile only lower it.
/// </summary>
public abstract class TensorLeakCheck : IDisposable
{
    private readonly long _liveAtStart = Tensor.TotalCount;
    private readonly DisposeScope _scope = NewDisposeScope();
    private long _moduleParameters;

    /// <summary>
    /// Declares parameter tensors of nn.Modules the test builds. TorchSharp's Parameter takes
    /// over the native handle of the tensor it wraps (Tensor.MoveHandle) without lowering
    /// Tensor.TotalCount, so each parameter raises the count by one for good even after its
    /// module is disposed (ConvNet3Tests pins this down); those are not leaks.
    /// </summary>
    protected void AllowModuleParameters(long parameterTensors) => _moduleParameters += parameterTensors;

    public virtual void Dispose()
    {
        _scope.Dispose();
        GC.SuppressFinalize(this);
        var leaked = Tensor.TotalCount - _liveAtStart - _moduleParameters;
        Assert.True(leaked <= 0, $"{leaked} tensor(s) created by this test were never disposed");
    }
}
