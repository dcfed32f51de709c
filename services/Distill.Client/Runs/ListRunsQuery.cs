namespace Distill.Client;

public enum RunOrder
{
    CreateTimeDescending,
    CreateTime,
    UpdateTimeDescending,
    UpdateTime,
}

/// <summary>Which runs to list. A page token only holds with the same filters it was issued for.</summary>
/// <param name="PageSize">Null: 50; at most 1000.</param>
/// <param name="States">Null or empty: every state.</param>
/// <param name="Methods">Null or empty: every method.</param>
/// <param name="Order">Null: newest first.</param>
public sealed record ListRunsQuery(
    int? PageSize = null,
    string? PageToken = null,
    IReadOnlyList<RunStatus>? States = null,
    string? Dataset = null,
    IReadOnlyList<DistillationMethod>? Methods = null,
    RunOrder? Order = null);
