using static TorchSharp.torch;

namespace Distill.Core.Tests;

/// <summary>Numerical comparisons with the tolerance stated at the call site.</summary>
internal static class TensorAssert
{
    public static void Close(Tensor expected, Tensor actual, double relativeTolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var e = expected.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        var a = actual.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
        Close(e, a, relativeTolerance, what);
    }

    /// <summary>max |a - e| / max(max |e|, tiny) must be below the tolerance.</summary>
    public static void Close(double[] expected, double[] actual, double relativeTolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(expected.Max(Math.Abs), 1e-300);
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.True(actual.All(double.IsFinite), $"{what}: non-finite values");
        Assert.True(worst / scale <= relativeTolerance, $"{what}: max error {worst:E3} relative to scale {scale:E3} is {worst / scale:E3} > {relativeTolerance:E1}");
    }

    public static double[] ToArray(Tensor t) => t.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();
}
