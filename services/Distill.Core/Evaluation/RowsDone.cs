namespace Distill.Core.Evaluation;

/// <summary>How far a pass over a split's rows has come: after each block, the rows finished so far.</summary>
public readonly record struct RowsDone(long Done, long Total);
