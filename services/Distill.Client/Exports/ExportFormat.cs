namespace Distill.Client;

public enum ExportFormat
{
    Safetensors,
    Npz,
    /// <summary>One PNG with the images in a grid, a row per class.</summary>
    PngGrid,
}
