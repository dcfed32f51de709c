using Distill.Core.Data;

namespace Distill.Core.Tests;

/// <summary>
/// A small learnable image problem: each class is a random template plus heavy
/// per-image noise, so a handful of well-chosen support images beat random ones.
/// </summary>
internal static class SyntheticImages
{
    public static ImageDataset Create(int classes = 4, int trainPerClass = 60, int testPerClass = 40,
        int channels = 1, int size = 6, double noise = 0.35, int seed = 0)
    {
        var random = new Random(seed);
        int d = channels * size * size;
        var templates = Enumerable.Range(0, classes).Select(_ => Enumerable.Range(0, d).Select(_ => random.NextDouble()).ToArray()).ToArray();
        LabeledImages Split(int perClass)
        {
            int n = classes * perClass;
            var pixels = new float[n * d];
            var labels = new int[n];
            for (int i = 0; i < n; i++)
            {
                labels[i] = i % classes;
                for (int j = 0; j < d; j++)
                    pixels[i * d + j] = (float)Math.Clamp(templates[labels[i]][j] + noise * Gaussian(random), 0, 1);
            }
            return new LabeledImages(pixels, labels, channels, size, size, Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray());
        }
        return new ImageDataset("synthetic", Split(trainPerClass), Split(testPerClass));
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
