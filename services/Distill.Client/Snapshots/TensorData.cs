namespace Distill.Client;

/// <summary>A dense row-major tensor, decoded to float32 whatever the wire type was.</summary>
public sealed record TensorData(float[] Data, int[] Shape)
{
    /// <summary>The value at a multi-index, for spot checks; bulk work reads <see cref="Data"/>.</summary>
    public float this[params int[] index]
    {
        get
        {
            if (index.Length != Shape.Length) throw new ArgumentException($"expected {Shape.Length} indices", nameof(index));
            var offset = 0;
            for (var i = 0; i < Shape.Length; i++)
            {
                if ((uint)index[i] >= (uint)Shape[i]) throw new ArgumentOutOfRangeException(nameof(index));
                offset = offset * Shape[i] + index[i];
            }
            return Data[offset];
        }
    }
}
