namespace Distill.Client;

/// <param name="Snapshots">Oldest first.</param>
/// <param name="NextPageToken">Null on the last page.</param>
public sealed record SnapshotPage(IReadOnlyList<SnapshotInfo> Snapshots, string? NextPageToken, int TotalSize);
