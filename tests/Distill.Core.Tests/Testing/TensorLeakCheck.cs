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

    public virtual void Dispose()
    {
        _scope.Dispose();
        GC.SuppressFinalize(this);
        var leaked = Tensor.TotalCount - _liveAtStart;
        Assert.True(leaked <= 0, $"{leaked} tensor(s) created by this test were never disposed");
    }
}
