using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Testing;

/// <summary>The leak check itself: it must fail a test that leaks and pass one that does not.</summary>
public class TensorLeakCheckTests
{
    private sealed class Probe : TensorLeakCheck;

    private static T OnAnotherThread<T>(Func<T> work)
    {
        T result = default!;
        var thread = new Thread(() => result = work());
        thread.Start();
        thread.Join();
        return result;
    }

    [Fact]
    public void Dispose_TensorMadeOnAnotherThreadAndKept_FailsTheTest()
    {
        var probe = new Probe();
        var kept = OnAnotherThread(() => zeros(3));
        try
        {
            var failure = Assert.ThrowsAny<Exception>(probe.Dispose);
            Assert.Contains("1 tensor(s)", failure.Message);
        }
        finally
        {
            kept.Dispose();
        }
    }

    [Fact]
    public void Dispose_TensorsOfTheTestBodyOnly_Passes()
    {
        var probe = new Probe();
        _ = ones(4).add(ones(4), One).sum();
        var disposed = OnAnotherThread(() => { using var t = zeros(3); return t.shape[0]; });
        Assert.Equal(3, disposed);
        probe.Dispose();
    }
}
