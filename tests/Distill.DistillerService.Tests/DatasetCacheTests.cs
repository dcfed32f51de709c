using Distill.DistillerService.Configuration;
using Distill.DistillerService.Datasets;
using Distill.Protos.Kernel.V1;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Tests;

/// <summary>The distiller's loaded datasets: held while in use, and only a few idle ones kept.</summary>
public sealed class DatasetCacheTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("distill-dataset-cache-");

    public DatasetCacheTests() => TinyDataset.Write(_root.FullName, trainPerClass: 5, testPerClass: 2);

    public void Dispose() => _root.Delete(recursive: true);

    // Each ZCA regularisation is its own preprocessing, so its own loaded dataset.
    private static Protos.Distiller.V1.RunSpec Spec(double zcaRegularization)
    {
        var spec = LoopbackCluster.Spec();
        spec.Preprocessing = new Preprocessing { Standardize = true, Zca = true, ZcaRegularization = zcaRegularization };
        return spec;
    }

    [Fact]
    public async Task NewPreprocessingSettings_OneAfterAnother_KeepOnlyTheIdleLimitLoaded_AndNeverFreeADatasetInUse()
    {
        using var cache = new DatasetCache(Options.Create(new DistillerOptions { DataRoot = _root.FullName, MaxIdleDatasets = 1 }));
        using var held = await cache.AcquireAsync(Spec(0.5));

        var released = new List<Core.Data.PreparedDataset>();
        foreach (var regularization in new[] { 0.1, 0.2, 0.3, 0.4 })
        {
            using var lease = await cache.AcquireAsync(Spec(regularization));
            released.Add(lease.Data);
        }

        // The one in use, and the last idle one; the three idle before it are freed.
        Assert.Equal(2, cache.Count);
        Assert.False(held.Data.TrainImages.IsInvalid);
        Assert.All(released.Take(3), data => Assert.True(data.TrainImages.IsInvalid));
        Assert.False(released[^1].TrainImages.IsInvalid);

        // The same settings again share the loaded dataset.
        using var again = await cache.AcquireAsync(Spec(0.5));
        Assert.Same(held.Data, again.Data);
    }
}
