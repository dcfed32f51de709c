using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>KIP's regression targets: y = e_c - 1/C (0.9 and -0.1 for ten classes).</summary>
public static class CenteredOneHot
{
    /// <summary>The targets on <paramref name="device"/> (default: the compute device).</summary>
    public static Tensor Encode(ReadOnlySpan<int> labels, int classCount, Device? device = null)
    {
        var values = new double[labels.Length * classCount];
        Array.Fill(values, -1.0 / classCount);
        for (int i = 0; i < labels.Length; i++)
            values[i * classCount + labels[i]] += 1.0;
        return tensor(values, [labels.Length, classCount], dtype: ScalarType.Float64, device: device ?? Runtime.TorchRuntime.TorchDevice);
    }
}
