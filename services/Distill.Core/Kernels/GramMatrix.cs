using Distill.Core.Evaluation;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// Gram matrices and their vector-Jacobian products computed over row blocks of the
/// first operand, so that memory is bounded by block x n2 whatever n1 is.
/// </summary>
public static class GramMatrix
{
    public const int DefaultBlockRows = 4096;

    /// <summary>
    /// Rows of an n1 x <paramref name="columns"/> Gram matrix that fit in one message of
    /// <paramref name="maxMessageBytes"/>, leaving a tenth for framing; 0 when not even one row fits.
    /// </summary>
    public static long RowsPerBlock(long columns, int elementSize, long maxMessageBytes) =>
        Math.Max(0, (long)(maxMessageBytes * 0.9 - 1024) / (Math.Max(1, columns) * elementSize));

    /// <summary>K(x1, x2) without gradient tracking, one block of rows at a time.</summary>
    public static Tensor Compute(IKernel kernel, Tensor x1, Tensor x2, int blockRows = DefaultBlockRows)
    {
        CheckBlockRows(blockRows);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var n1 = x1.shape[0];
        var result = empty(n1, x2.shape[0], dtype: x1.dtype, device: x1.device);
        for (long start = 0; start < n1; start += blockRows)
        {
            using var blockScope = NewDisposeScope();
            var length = Math.Min(blockRows, n1 - start);
            result.narrow(0, start, length).copy_(kernel.Compute(x1.narrow(0, start, length), x2));
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// K(x, x) as <see cref="IKernel.ComputeSymmetric"/> gives it, without gradient tracking, in
    /// blocks of rows: each block's square on the diagonal, then its rectangle to the right,
    /// mirrored below. After each block the image pairs done so far go to <paramref name="progress"/>
    /// and cancellation takes effect: an exact ConvNet Gram of a few hundred images takes many minutes.
    /// </summary>
    /// <param name="blockRows">rows per block; 0: about twenty blocks of at least 16 rows, because
    /// each block recomputes per-image work for the columns it reaches (a ConvNet's self recursion).</param>
    public static Tensor ComputeSymmetric(IKernel kernel, Tensor x, int blockRows = 0, Action<RowsDone>? progress = null,
        CancellationToken cancellation = default)
    {
        if (blockRows < 0)
            throw new ArgumentException($"block_rows must not be negative, got {blockRows}", nameof(blockRows));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var n = x.shape[0];
        var rows = blockRows > 0 ? blockRows : Math.Max(16, (n + 19) / 20);
        var pairs = n * (n + 1) / 2;
        var result = empty(n, n, dtype: x.dtype, device: x.device);
        long done = 0;
        for (long start = 0; start < n; start += rows)
        {
            cancellation.ThrowIfCancellationRequested();
            using var blockScope = NewDisposeScope();
            var length = Math.Min(rows, n - start);
            var block = x.narrow(0, start, length);
            result.narrow(0, start, length).narrow(1, start, length).copy_(kernel.ComputeSymmetric(block));
            var rest = n - start - length;
            if (rest > 0)
            {
                var right = kernel.Compute(block, x.narrow(0, start + length, rest));
                result.narrow(0, start, length).narrow(1, start + length, rest).copy_(right);
                result.narrow(0, start + length, rest).narrow(1, start, length).copy_(right.t());
            }
            done += length * (length + 1) / 2 + length * rest;
            progress?.Invoke(new RowsDone(done, pairs, SupportGram: true));
        }
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Gradients of sum(cotangent * K(x1, x2)) with respect to x1 and x2 (each only when
    /// asked for). When <paramref name="symmetric"/> is set, x1 and x2 are the same
    /// tensor, K is computed with its closed-form diagonal and the single gradient is
    /// returned as <c>Grad1</c>.
    /// </summary>
    public static (Tensor? Grad1, Tensor? Grad2) VectorJacobianProduct(
        IKernel kernel, Tensor x1, Tensor x2, Tensor cotangent,
        bool wantGrad1 = true, bool wantGrad2 = true, bool symmetric = false,
        int blockRows = DefaultBlockRows, CancellationToken cancellation = default)
    {
        CheckBlockRows(blockRows);
        if (cotangent.dim() != 2 || cotangent.shape[0] != x1.shape[0] || cotangent.shape[1] != x2.shape[0])
            throw new ArgumentException($"cotangent must have shape [{x1.shape[0]},{x2.shape[0]}], got [{string.Join(",", cotangent.shape)}]");
        if (symmetric)
        {
            using var forward = kernel.ForwardSymmetric(x1);
            return (forward.Backward(cotangent).Grad1, null);
        }
        if (!wantGrad1 && !wantGrad2)
            return (null, null);

        using var scope = NewDisposeScope();
        var grad1 = wantGrad1 ? zeros_like(x1) : null;
        var grad2 = wantGrad2 ? zeros_like(x2) : null;
        var n1 = x1.shape[0];
        for (long start = 0; start < n1; start += blockRows)
        {
            cancellation.ThrowIfCancellationRequested();
            using var blockScope = NewDisposeScope();
            var length = Math.Min(blockRows, n1 - start);
            using var forward = kernel.Forward(x1.narrow(0, start, length), x2);
            var (g1, g2) = forward.Backward(cotangent.narrow(0, start, length), wantGrad1, wantGrad2);
            if (g1 is not null) grad1!.narrow(0, start, length).copy_(g1);
            if (g2 is not null) grad2!.add_(g2, One);
        }
        grad1?.MoveToOuterDisposeScope();
        grad2?.MoveToOuterDisposeScope();
        return (grad1, grad2);
    }

    private static void CheckBlockRows(int blockRows)
    {
        if (blockRows <= 0)
            throw new ArgumentException($"block_rows must be positive, got {blockRows}", nameof(blockRows));
    }
}
