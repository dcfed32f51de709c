namespace Distill.Core.Evaluation;

/// <summary>
/// How far a pass over a split's rows has come: after each block, the rows finished so far. The
/// support's own Gram matrix, which an evaluation or a Label Solve also computes, reports with
/// <paramref name="SupportGram"/> set, counting image pairs.
/// </summary>
public readonly record struct RowsDone(long Done, long Total, bool SupportGram = false);
