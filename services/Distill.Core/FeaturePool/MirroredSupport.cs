using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// The support set as a kernel sees it with mirroring on: the n images and then their n
/// horizontal mirror images, the labels repeated. Every kernel here is unchanged when both of
/// its images are mirrored, so a KRR model on this set predicts the same for an image and
/// its mirror image, at no cost in learned images.
/// </summary>
public static class MirroredSupport
{
    /// <summary>[images; mirror images] as 2n rows of C*H*W values, from n rows or n x C x H x W.</summary>
    public static Tensor Images(Tensor images, long channels, long height, long width)
    {
        long n = images.shape[0];
        using var grid = images.reshape(n, channels, height, width);
        using var mirrored = grid.flip(3).reshape(n, -1);
        using var rows = images.reshape(n, -1);
        return cat([rows, mirrored], 0);
    }

    /// <summary>The labels of <see cref="Images"/>: each image's twice, in the same order.</summary>
    public static Tensor Labels(Tensor labels) => cat([labels, labels], 0);

    /// <summary>The classes of <see cref="Images"/>.</summary>
    public static int[] Classes(int[] classes) => [.. classes, .. classes];
}
