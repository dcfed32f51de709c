using Distill.Core.Preprocessing;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Preprocessing;

public class PreprocessorTests : TensorLeakCheck
{
    [Fact]
    public void Fit_Standardize_GivesZeroMeanUnitStdPerChannelOnTrain()
    {
        var data = SyntheticImages.Create(channels: 3, size: 4);
        using var preprocessor = Preprocessor.Fit(data.Train, new PreprocessingSpec());
        var features = preprocessor.Apply(data.Train).reshape(data.Train.Count, 3, 16);
        var mean = TensorAssert.ToArray(features.mean([0L, 2L]));
        var std = TensorAssert.ToArray(features.std([0L, 2L], unbiased: false));
        Assert.All(mean, m => Assert.True(Math.Abs(m) < 1e-9));
        Assert.All(std, s => Assert.True(Math.Abs(s - 1) < 1e-9));
    }

    [Fact]
    public void Invert_AfterApplyWithZca_ReturnsTheOriginalPixels()
    {
        var data = SyntheticImages.Create(channels: 3, size: 4);
        using var preprocessor = Preprocessor.Fit(data.Train, new PreprocessingSpec(Zca: true));
        var features = preprocessor.Apply(data.Test);
        var pixels = tensor(data.Test.Pixels, [data.Test.Count, 3, 4, 4]).to_type(ScalarType.Float64);
        TensorAssert.Close(pixels, preprocessor.Invert(features), 1e-9, "round trip");
    }

    [Fact]
    public void Apply_Zca_ShrinksEachTrainEigenvalueToSOverSPlusRidge()
    {
        var data = SyntheticImages.Create(channels: 1, size: 4, trainPerClass: 100);
        using var standardizer = Preprocessor.Fit(data.Train, new PreprocessingSpec());
        using var zca = Preprocessor.Fit(data.Train, new PreprocessingSpec(Zca: true, ZcaRegularization: 0.1));
        var x = standardizer.Apply(data.Train);
        var w = zca.Apply(data.Train);
        int n = data.Train.Count, d = 16;
        using Scalar count = n;

        var eigenvalues = TensorAssert.ToArray(linalg.eigvalsh(x.t().matmul(x).div(count)));
        double ridge = 0.1 * eigenvalues.Sum() / d;
        var expected = eigenvalues.Select(s => s / (s + ridge)).Order().ToArray();
        var actual = TensorAssert.ToArray(linalg.eigvalsh(w.t().matmul(w).div(count))).Order().ToArray();
        TensorAssert.Close(expected, actual, 1e-9, "whitened spectrum");
    }
}
