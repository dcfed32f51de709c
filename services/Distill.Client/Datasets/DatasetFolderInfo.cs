namespace Distill.Client;

/// <summary>A dataset folder under the distiller's data root; <paramref name="Path"/> is what <see cref="RunSpecification.Dataset"/> names.</summary>
public sealed record DatasetFolderInfo(string Path, DatasetFormat Format);
