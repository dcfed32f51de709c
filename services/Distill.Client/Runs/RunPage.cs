namespace Distill.Client;

/// <param name="NextPageToken">Null on the last page.</param>
/// <param name="TotalSize">Runs matching the query over all pages.</param>
public sealed record RunPage(IReadOnlyList<RunInfo> Runs, string? NextPageToken, int TotalSize);
