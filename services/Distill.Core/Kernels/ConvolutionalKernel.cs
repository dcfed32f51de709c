using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Kernels;

/// <summary>
/// Exact NNGP and NTK of the convolutional architectures of <see cref="KernelArchitecture"/>
/// (3x3 SAME convolutions, ReLU, 2x2 average pooling, Flatten or global-average-pool readout,
/// Dense; NTK parameterisation; kernel-math.md section 2). Inputs are n x (C*H*W) rows, read as
/// channel-major C x H x W images of the spec's size.
/// <para>
/// For every image pair the recursion keeps a tensor over pixel pairs (p, p'). With a Flatten
/// readout only same-pixel pairs of the last layer are read, and a 2x2 pool maps a pixel offset
/// D to 2D + {-1, 0, 1}, so each resolution needs only offsets |i - i'| &lt;= D_h and
/// |j - j'| &lt;= D_w (0 at the last one, 2D + 1 before each pool): the banded layout stores
/// [pairs, H, 2D_h + 1, W, 2D_w + 1] instead of the full [pairs, H, H, W, W] (kernel-math.md
/// section 8). A global-average-pool readout needs every pixel pair and uses the full layout.
/// </para>
/// <para>
/// Each image's own pixel-pair tensor (its NNGP with itself) gives the variances q the ReLU needs;
/// on its same-pixel entries the ReLU uses the closed forms q/2 and 1/2, so K(x, x) has finite
/// gradients. Work is split into chunks of image pairs whose largest per-layer tensor holds at
/// most <see cref="MaxChunkElements"/> elements (autograd keeps a few tens of such tensors).
/// Gradients come from autograd, recomputing each chunk's forward pass in the backward pass.
/// </para>
/// </summary>
public sealed class ConvolutionalKernel : IKernel
{
    /// <summary>4M float64 elements: 32 MiB for the largest tensor of one chunk.</summary>
    public const long DefaultMaxChunkElements = 1L << 22;

    internal enum Layer { Conv, Relu, Pool }

    // Static Scalars are never finalized mid-call (see HeldScalars).
    private static readonly Scalar Zero = 0, Half = 0.5, Quarter = 0.25, Third = 1.0 / 3, Ninth = 1.0 / 9, MinusOne = -1.0,
        RelativeFloor = 1e-12, AbsoluteFloor = 1e-30, Pi = Math.PI, TwoPi = 2 * Math.PI, MinusTwoPi = -2 * Math.PI;

    private readonly Layer[] _layers;
    private readonly Scalar _w2;
    private readonly Scalar _b2;
    private readonly int _channels;
    private readonly int _height;
    private readonly int _width;
    private readonly IPairLayout _layout;

    /// <param name="spec">a convolutional architecture with its image size.</param>
    /// <param name="maxChunkElements">bound on the largest per-layer tensor of one chunk of image pairs.</param>
    /// <param name="banded">with a Flatten readout, keep only the pixel offsets the readout depends on (exact);
    /// false computes every pixel pair, as a global-average-pool readout must.</param>
    public ConvolutionalKernel(KernelSpec spec, long maxChunkElements = DefaultMaxChunkElements, bool banded = true)
    {
        Spec = spec.Validate();
        if (!spec.IsConvolutional)
            throw new ArgumentException($"{spec.Architecture} is not a convolutional architecture", nameof(spec));
        if (maxChunkElements <= 0)
            throw new ArgumentException($"max_chunk_elements must be positive, got {maxChunkElements}", nameof(maxChunkElements));
        MaxChunkElements = maxChunkElements;
        _layers = Layers(spec.Architecture);
        _w2 = spec.WStd * spec.WStd;
        _b2 = spec.BStd * spec.BStd;
        _channels = spec.ImageChannels;
        _height = spec.ImageHeight;
        _width = spec.ImageWidth;
        int levels = _layers.Count(l => l == Layer.Pool) + 1;
        var heights = new long[levels];
        var widths = new long[levels];
        heights[0] = _height;
        widths[0] = _width;
        for (int l = 1; l < levels; l++)
        {
            heights[l] = heights[l - 1] / 2;
            widths[l] = widths[l - 1] / 2;
        }
        IsBanded = banded && spec.Readout == KernelReadout.Flatten;
        _layout = IsBanded ? new BandedLayout(heights, widths) : new FullLayout(heights, widths);
    }

    public KernelSpec Spec { get; }

    public long MaxChunkElements { get; }

    /// <summary>Whether only the band of pixel offsets a Flatten readout depends on is computed.</summary>
    public bool IsBanded { get; }

    /// <summary>Number of 2x2 poolings of an architecture.</summary>
    public static int PoolCount(KernelArchitecture architecture) =>
        architecture == KernelArchitecture.FullyConnected ? 0 : Layers(architecture).Count(l => l == Layer.Pool);

    internal static Layer[] Layers(KernelArchitecture architecture)
    {
        Layer[] block = [Layer.Conv, Layer.Relu, Layer.Pool];
        Layer[] convRelu = [Layer.Conv, Layer.Relu];
        return architecture switch
        {
            KernelArchitecture.ConvNet3 => [.. block, .. block, .. block],
            KernelArchitecture.ConvNet => [.. convRelu, .. block, .. block, .. block],
            // KIP notebook layer_factor [1, 1, 1]: conv-relu; 1 x conv-relu, pool; 1 x conv-relu, pool; 1 x conv-relu.
            KernelArchitecture.Myrtle5 => [.. convRelu, .. convRelu, Layer.Pool, .. convRelu, Layer.Pool, .. convRelu],
            _ => throw new ArgumentException($"{architecture} is not a convolutional architecture", nameof(architecture)),
        };
    }

    public Tensor Compute(Tensor x1, Tensor x2)
    {
        CheckOperands(x1, x2);
        using var scope = NewDisposeScope();
        var images1 = Images(x1);
        var images2 = Images(x2);
        var self1 = SelfChains(images1);
        var self2 = SelfChains(images2);
        return CrossChunked(images1, images2, self1, self2).MoveToOuterDisposeScope();
    }

    public Tensor ComputeSymmetric(Tensor x)
    {
        CheckOperands(x, x);
        using var scope = NewDisposeScope();
        var images = Images(x);
        var self = SelfChains(images);
        var cross = CrossChunked(images, images, self, self, upperTriangle: true);
        // The upper triangle mirrored: exactly symmetric, half the image pairs. On the diagonal
        // K(x, x) from the closed-form self recursion.
        var upper = cross.triu(1);
        return upper.add(upper.t(), One).add_(diag(self.Value), One).MoveToOuterDisposeScope();
    }

    public KernelForward Forward(Tensor x1, Tensor x2) => new Recomputing(this, x1, x2, symmetric: false);

    public KernelForward ForwardSymmetric(Tensor x) => new Recomputing(this, x, x, symmetric: true);

    private Tensor Images(Tensor x) => x.reshape(x.shape[0], _channels, _height, _width);

    private void CheckOperands(Tensor x1, Tensor x2)
    {
        if (x1.dim() != 2 || x2.dim() != 2)
            throw new ArgumentException($"kernel inputs must be n x d matrices, got shapes [{string.Join(",", x1.shape)}] and [{string.Join(",", x2.shape)}]");
        long d = (long)_channels * _height * _width;
        if (x1.shape[1] != d || x2.shape[1] != d)
            throw new ArgumentException($"kernel inputs must have C*H*W = {d} features ({_channels}x{_height}x{_width}), got {x1.shape[1]} and {x2.shape[1]}");
        if (x1.dtype != x2.dtype)
            throw new ArgumentException($"kernel inputs have different dtypes: {x1.dtype} and {x2.dtype}");
    }

    /// <summary>Elements of the largest per-layer tensor of one image pair.</summary>
    internal long ElementsPerPair => _layout.MaxElementsPerPair(_channels);

    /// <summary>Image pairs per chunk so that the largest per-layer tensor stays within budget.</summary>
    private long PairsPerChunk => Math.Max(1, MaxChunkElements / ElementsPerPair);

    private (long Rows, long Columns) ChunkShape(long n1, long n2)
    {
        long pairs = PairsPerChunk;
        long columns = Math.Max(1, Math.Min(n2, pairs));
        long rows = Math.Max(1, pairs / columns);
        return (rows, columns);
    }

    /// <summary>Per image: the ReLU input variances q (one [n, H, W] tensor per ReLU) and K(x, x).</summary>
    private sealed record SelfStatistics(List<Tensor> Variances, Tensor Value)
    {
        public SelfStatistics Narrow(long start, long length) =>
            new(Variances.Select(v => v.narrow(0, start, length)).ToList(), Value.narrow(0, start, length));
    }

    private SelfStatistics SelfChains(Tensor images)
    {
        long n = images.shape[0];
        long chunk = PairsPerChunk;
        if (n <= chunk)
            return SelfChain(images);
        var parts = new List<SelfStatistics>();
        for (long start = 0; start < n; start += chunk)
        {
            // Each part's pixel-pair tensors go with it (megabytes per image); only q and K(x, x) stay.
            using var partScope = NewDisposeScope();
            var part = SelfChain(images.narrow(0, start, Math.Min(chunk, n - start)));
            foreach (var q in part.Variances) q.MoveToOuterDisposeScope();
            part.Value.MoveToOuterDisposeScope();
            parts.Add(part);
        }
        var variances = Enumerable.Range(0, parts[0].Variances.Count)
            .Select(r => cat(parts.Select(p => p.Variances[r]).ToList(), 0)).ToList();
        return new SelfStatistics(variances, cat(parts.Select(p => p.Value).ToList(), 0));
    }

    private SelfStatistics SelfChain(Tensor images)
    {
        var variances = new List<Tensor>();
        var value = Run(_layout.SelfInput(images), (level, sigma) =>
        {
            // A copy, not a view: the view would keep the whole pixel-pair tensor of every image alive.
            var q = _layout.Diagonal(sigma, level).clone();
            variances.Add(q);
            return (_layout.SelfProducts(q, level), _layout.SamePixel(level, q.dtype, q.device), q.mul(Half).unsqueeze(2).unsqueeze(4));
        });
        return new SelfStatistics(variances, value);
    }

    private Tensor Cross(Tensor images1, Tensor images2, SelfStatistics self1, SelfStatistics self2)
    {
        int relu = 0;
        var value = Run(_layout.Input(images1, images2), (level, _) =>
        {
            var products = _layout.OuterProducts(self1.Variances[relu], self2.Variances[relu], level);
            relu++;
            return (products, null, null);
        });
        return value.reshape(images1.shape[0], images2.shape[0]);
    }

    /// <param name="upperTriangle">compute only chunks that reach the strict upper triangle (images1
    /// and images2 the same); the rest of the result is left at zero.</param>
    private Tensor CrossChunked(Tensor images1, Tensor images2, SelfStatistics self1, SelfStatistics self2, bool upperTriangle = false)
    {
        long n1 = images1.shape[0], n2 = images2.shape[0];
        var (rows, columns) = ChunkShape(n1, n2);
        if (rows >= n1 && columns >= n2)
            return Cross(images1, images2, self1, self2);
        var result = zeros(n1, n2, dtype: images1.dtype, device: images1.device);
        for (long r = 0; r < n1; r += rows)
        {
            long rl = Math.Min(rows, n1 - r);
            for (long c = upperTriangle ? r + 1 : 0; c < n2; c += columns)
            {
                long cl = Math.Min(columns, n2 - c);
                using var chunkScope = NewDisposeScope();
                result.narrow(0, r, rl).narrow(1, c, cl)
                    .copy_(Cross(images1.narrow(0, r, rl), images2.narrow(0, c, cl), self1.Narrow(r, rl), self2.Narrow(c, cl)));
            }
        }
        return result;
    }

    /// <summary>
    /// The layer recursion on pixel-pair tensors (kernel-math.md section 2):
    /// Conv: Sigma' = W^2 A(Sigma) + b^2, Theta' = Sigma' + W^2 A(Theta);
    /// ReLU: Sigma' = Sigma-hat, Theta' = Sigma-dot Theta; Pool: both pooled;
    /// readout r (mean over same pixels or over all pixel pairs), then Dense:
    /// K = W^2 r(Sigma) + b^2, Theta = K + W^2 r(Theta). Returns the NNGP or NTK per pair.
    /// </summary>
    /// <param name="reluInputs">for the ReLU at a level, given Sigma: the products q q' and, for an
    /// image with itself, the same-pixel mask and q/2 there.</param>
    private Tensor Run(Tensor input, Func<int, Tensor, (Tensor Products, Tensor? SamePixel, Tensor? HalfVariance)> reluInputs)
    {
        bool ntk = Spec.Kind == KernelKind.Ntk;
        var sigma = input;
        Tensor? theta = null;
        int level = 0;
        foreach (var layer in _layers)
        {
            switch (layer)
            {
                case Layer.Conv:
                    // Only the input is already zero where a partner pixel is outside the image.
                    var next = _layout.Conv(sigma, level, zeroOutside: ReferenceEquals(sigma, input)).mul_(_w2).add_(_b2, One);
                    if (ntk)
                        theta = theta is null ? next : next.add(_layout.Conv(theta, level), alpha: _w2);
                    sigma = next;
                    break;
                case Layer.Relu:
                    var (products, samePixel, halfVariance) = reluInputs(level, sigma);
                    var (expectation, derivative) = sigma.requires_grad || products.requires_grad
                        ? Relu(sigma, products, samePixel, halfVariance)
                        : ReluInference(sigma, products, samePixel, halfVariance, ntk);
                    if (ntk) theta = derivative!.mul(theta!);
                    sigma = expectation;
                    break;
                case Layer.Pool:
                    sigma = _layout.Pool(sigma, level);
                    if (ntk) theta = _layout.Pool(theta!, level);
                    level++;
                    break;
            }
        }
        var readout = _layout.Readout(sigma, level, Spec.Readout).mul(_w2).add_(_b2, One);
        return ntk ? readout.add(_layout.Readout(theta!, level, Spec.Readout), alpha: _w2) : readout;
    }

    /// <summary>
    /// The ReLU step of kernel-math.md section 1, elementwise, safe under autograd: the value
    /// uses the exact s = sqrt(max(q q' - k^2, 0)), the gradient a floored one (as
    /// <see cref="ReluArcCosine"/>), and same-pixel entries of an image with itself take the
    /// closed forms Sigma-hat = q/2, Sigma-dot = 1/2 (their general branch sees k = 0).
    /// </summary>
    private static (Tensor Expectation, Tensor Derivative) Relu(Tensor k, Tensor products, Tensor? samePixel, Tensor? halfVariance)
    {
        var kSafe = samePixel is null ? k : k.masked_fill(samePixel, Zero);
        var s2 = products.addcmul(kSafe, kSafe, value: MinusOne);
        var sFloored = maximum(s2, products.mul(RelativeFloor).add_(AbsoluteFloor, One)).sqrt();
        var s = sFloored.add(s2.detach().clamp_min(Zero).sqrt_().sub_(sFloored.detach()), One);
        var piMinusTheta = atan2(s, kSafe).neg().add_(Pi, One);
        var expectation = s.addcmul(piMinusTheta, kSafe, value: One).div_(TwoPi);
        var derivative = piMinusTheta.div(TwoPi);
        if (samePixel is not null)
        {
            expectation = where(samePixel, halfVariance!.expand_as(expectation), expectation);
            derivative = derivative.masked_fill(samePixel, Half);
        }
        return (expectation, derivative);
    }

    /// <summary>
    /// The same ReLU step without autograd (evaluation, the forward pass of a step): the exact s
    /// only, in place on the fresh products tensor, and no derivative for the NNGP. Roughly a
    /// third of the passes over memory of <see cref="Relu"/>, which dominates a cross chunk.
    /// </summary>
    private static (Tensor Expectation, Tensor? Derivative) ReluInference(Tensor k, Tensor products, Tensor? samePixel, Tensor? halfVariance, bool derivative)
    {
        var kSafe = samePixel is null ? k : k.masked_fill(samePixel, Zero);
        var s = products.addcmul_(kSafe, kSafe, value: MinusOne).clamp_min_(Zero).sqrt_();
        var theta = atan2(s, kSafe);
        // (s + (pi - theta) k) / 2pi and (pi - theta) / 2pi, in as few passes as the terms allow.
        var slope = derivative ? theta.div(MinusTwoPi).add_(Half, One) : null;
        var expectation = s.add_(kSafe, Pi).addcmul_(theta, kSafe, value: MinusOne).div_(TwoPi);
        if (samePixel is not null)
        {
            expectation = where(samePixel, halfVariance!.expand_as(expectation), expectation);
            slope = slope?.masked_fill_(samePixel, Half);
        }
        return (expectation, slope);
    }

    /// <summary>How pixel-pair tensors of a batch of image pairs are laid out, and the layer operators on them.</summary>
    private interface IPairLayout
    {
        long MaxElementsPerPair(long channels);
        /// <summary>K0 for all pairs (a, b), flattened a-major: the channel mean of x[p] x'[p'].</summary>
        Tensor Input(Tensor images1, Tensor images2);
        /// <summary>K0 of each image with itself.</summary>
        Tensor SelfInput(Tensor images);
        /// <param name="zeroOutside">entries whose partner pixel is outside the image are already zero.</param>
        Tensor Conv(Tensor t, int level, bool zeroOutside = false);
        Tensor Pool(Tensor t, int level);
        /// <summary>Same-pixel entries, [pairs, H, W].</summary>
        Tensor Diagonal(Tensor t, int level);
        Tensor Readout(Tensor t, int level, KernelReadout readout);
        /// <summary>q1[p] q2[p'] for all pairs (a, b).</summary>
        Tensor OuterProducts(Tensor q1, Tensor q2, int level);
        /// <summary>q[p] q[p'] of each image with itself.</summary>
        Tensor SelfProducts(Tensor q, int level);
        /// <summary>True where p = p'.</summary>
        Tensor SamePixel(int level, ScalarType dtype, Device device);
    }

    /// <summary>[pairs, H, H', W, W']: every pixel pair.</summary>
    private sealed class FullLayout(long[] heights, long[] widths) : IPairLayout
    {
        public long MaxElementsPerPair(long channels) => Enumerable.Range(0, heights.Length)
            .Max(l => heights[l] * heights[l] * widths[l] * widths[l]);

        public Tensor Input(Tensor images1, Tensor images2)
        {
            using Scalar channels = images1.shape[1];
            var k = einsum("acij,bckl->abikjl", images1, images2).div_(channels);
            return k.reshape(-1, k.shape[2], k.shape[3], k.shape[4], k.shape[5]);
        }

        public Tensor SelfInput(Tensor images)
        {
            using Scalar channels = images.shape[1];
            return einsum("acij,ackl->aikjl", images, images).div_(channels);
        }

        // (A K)[p, p'] = (1/9) sum over delta of K[p + delta, p' + delta], zero outside: separably a
        // 3x3 convolution of each (i, i') and (j, j') plane with diag(1/3), zero padding 1.
        public Tensor Conv(Tensor t, int level, bool zeroOutside = false)
        {
            using var filter = eye(3, dtype: t.dtype, device: t.device).mul_(Third).reshape(1, 1, 3, 3);
            return Planes(t, plane => nn.functional.conv2d(plane, filter, padding: [1, 1]));
        }

        // 2x2 stride-2 VALID average pooling of each (i, i') and (j, j') plane: 1/16 of the 2x2x2x2 window.
        public Tensor Pool(Tensor t, int level) => Planes(t, plane => nn.functional.avg_pool2d(plane, [2, 2], [2, 2]));

        private static Tensor Planes(Tensor t, Func<Tensor, Tensor> op)
        {
            long n = t.shape[0], h = t.shape[1], w = t.shape[3];
            // (j, j') planes are the last two dimensions.
            var byW = op(t.reshape(-1, 1, w, w));
            long w2 = byW.shape[2];
            // (i, i') planes: move them last, then back.
            var moved = byW.reshape(n, h, h, w2, w2).permute(0, 3, 4, 1, 2).reshape(-1, 1, h, h);
            var byH = op(moved);
            long h2 = byH.shape[2];
            return byH.reshape(n, w2, w2, h2, h2).permute(0, 3, 4, 1, 2);
        }

        public Tensor Diagonal(Tensor t, int level) => t.diagonal(0, 1, 2).diagonal(0, 1, 2);

        public Tensor Readout(Tensor t, int level, KernelReadout readout) => readout == KernelReadout.Flatten
            ? Diagonal(t, level).mean([1L, 2L])
            : t.mean([1L, 2L, 3L, 4L]);

        public Tensor OuterProducts(Tensor q1, Tensor q2, int level)
        {
            long h = q1.shape[1], w = q1.shape[2];
            return q1.reshape(q1.shape[0], 1, h, 1, w, 1).mul(q2.reshape(1, q2.shape[0], 1, h, 1, w)).reshape(-1, h, h, w, w);
        }

        public Tensor SelfProducts(Tensor q, int level) => q.unsqueeze(2).unsqueeze(4).mul(q.unsqueeze(1).unsqueeze(3));

        public Tensor SamePixel(int level, ScalarType dtype, Device device)
        {
            long h = heights[level], w = widths[level];
            return eye(h, dtype: ScalarType.Bool, device: device).reshape(h, h, 1, 1)
                .logical_and(eye(w, dtype: ScalarType.Bool, device: device).reshape(1, 1, w, w));
        }
    }

    /// <summary>
    /// [pairs, H, 2D_h + 1, W, 2D_w + 1]: entry [i, D_h + d, j, D_w + e] is the pixel pair
    /// ((i, j), (i + d, j + e)); entries whose second pixel is outside the image are kept at zero
    /// where an operator reads them.
    /// </summary>
    private sealed class BandedLayout : IPairLayout
    {
        private readonly long[] _heights;
        private readonly long[] _widths;
        private readonly long[] _bandH;
        private readonly long[] _bandW;

        public BandedLayout(long[] heights, long[] widths)
        {
            _heights = heights;
            _widths = widths;
            int levels = heights.Length;
            _bandH = new long[levels];
            _bandW = new long[levels];
            // Flatten reads offset 0 of the last level; before a pool, offsets 2D + {-1, 0, 1};
            // an offset of a side's length or more has no pixel pair.
            for (int l = levels - 2; l >= 0; l--)
            {
                _bandH[l] = Math.Min(2 * _bandH[l + 1] + 1, heights[l] - 1);
                _bandW[l] = Math.Min(2 * _bandW[l + 1] + 1, widths[l] - 1);
            }
        }

        /// <summary>Band half-widths per resolution, from the input's to the readout's.</summary>
        public IReadOnlyList<long> BandHeights => _bandH;

        // The input's neighbourhoods hold C band entries per pixel of each image: counted per pair, conservatively.
        public long MaxElementsPerPair(long channels) => Math.Max(channels, 1) * Enumerable.Range(0, _heights.Length)
            .Max(l => _heights[l] * (2 * _bandH[l] + 1) * _widths[l] * (2 * _bandW[l] + 1));

        // For each pixel, the band of pixels around it: [n, C, H, W, 2D_h + 1, 2D_w + 1], zero outside.
        private Tensor Neighbourhoods(Tensor images, double outside)
        {
            long dh = _bandH[0], dw = _bandW[0];
            return nn.functional.pad(images, [dw, dw, dh, dh], value: outside).unfold(2, 2 * dh + 1, 1).unfold(3, 2 * dw + 1, 1);
        }

        // A sum of C broadcast products: einsum's batched matrix product over pixels with an inner
        // dimension of C = 3 was five times slower.
        public Tensor Input(Tensor images1, Tensor images2)
        {
            var neighbourhoods = Neighbourhoods(images2, 0);
            long c = images1.shape[1], n1 = images1.shape[0], n2 = images2.shape[0], h = images1.shape[2], w = images1.shape[3];
            Tensor? k = null;
            for (long channel = 0; channel < c; channel++)
            {
                var own = images1.select(1, channel).reshape(n1, 1, h, w, 1, 1);
                var partner = neighbourhoods.select(1, channel).unsqueeze(0);
                k = k is null ? own.mul(partner) : k.addcmul_(own, partner, value: One);
            }
            using Scalar channels = c;
            // [a, b, i, j, d, e] -> [a * b, i, d, j, e]
            return k!.div_(channels).permute(0, 1, 2, 4, 3, 5).reshape(n1 * n2, h, neighbourhoods.shape[4], w, neighbourhoods.shape[5]);
        }

        public Tensor SelfInput(Tensor images)
        {
            using Scalar channels = images.shape[1];
            return einsum("acij,acijkl->aikjl", images, Neighbourhoods(images, 0)).div_(channels);
        }

        private Tensor Valid(int level, ScalarType dtype, Device device)
        {
            return Axis(_heights[level], _bandH[level]).reshape(_heights[level], -1, 1, 1)
                .mul(Axis(_widths[level], _bandW[level]).reshape(1, 1, _widths[level], -1));

            Tensor Axis(long size, long band)
            {
                using Scalar end = size, first = -band, last = band + 1;
                var i = arange(end, dtype: ScalarType.Int64, device: device).unsqueeze(1);
                var partner = i.add(arange(first, last, dtype: ScalarType.Int64, device: device).unsqueeze(0), One);
                return partner.ge(Zero).logical_and(partner.lt(end)).to_type(dtype);
            }
        }

        // Offsets are preserved by the diagonal shift, so A is a zero-padded 3-tap mean along i and
        // along j; entries whose partner pixel is outside the image read as zero.
        public Tensor Conv(Tensor t, int level, bool zeroOutside = false)
        {
            var masked = zeroOutside ? t : t.mul(Valid(level, t.dtype, t.device));
            return BoxSum(BoxSum(masked, 1), 3).mul_(Ninth);
        }

        // out[i] = t[i - 1] + t[i] + t[i + 1] along dim, zero beyond the ends.
        private static Tensor BoxSum(Tensor t, long dim)
        {
            long n = t.shape[dim];
            var sum = t.clone();
            if (n > 1)
            {
                sum.narrow(dim, 1, n - 1).add_(t.narrow(dim, 0, n - 1), One);
                sum.narrow(dim, 0, n - 1).add_(t.narrow(dim, 1, n - 1), One);
            }
            return sum;
        }

        // Pooled[I, D] = 1/4 sum over a, b in {0, 1} of K[2I + a, offset 2D + b - a], per axis.
        public Tensor Pool(Tensor t, int level)
        {
            var masked = t.mul(Valid(level, t.dtype, t.device));
            var byH = PoolAxis(masked, 1, _heights[level + 1], _bandH[level], _bandH[level + 1]);
            return PoolAxis(byH, 3, _widths[level + 1], _bandW[level], _bandW[level + 1]);
        }

        private static Tensor PoolAxis(Tensor t, int dim, long coarse, long band, long coarseBand)
        {
            long needed = 2 * coarseBand + 1;
            if (band < needed)
            {
                // Offsets beyond the side's length: no pixel pair, zero.
                var shape = (long[])t.shape.Clone();
                shape[dim + 1] = needed - band;
                var pad = zeros(shape, dtype: t.dtype, device: t.device);
                t = cat([pad, t, pad], dim + 1);
            }
            var rows = t.narrow(dim, 0, 2 * coarse);
            var split = rows.shape.Take(dim).Append(coarse).Append(2).Concat(rows.shape.Skip(dim + 1)).ToArray();
            rows = rows.reshape(split);
            var terms = new List<Tensor>(4);
            for (int a = 0; a <= 1; a++)
            {
                var row = rows.select(dim + 1, a);
                for (int b = 0; b <= 1; b++)
                {
                    // Fine offset index 2D + b - a + needed for D = -coarseBand..coarseBand: a strided view, not a copy.
                    long first = b - a + 1;
                    terms.Add(row.slice(dim + 1, first, first + 2 * (2 * coarseBand + 1) - 1, 2));
                }
            }
            return terms[0].add(terms[1], One).add_(terms[2], One).add_(terms[3], One).mul_(Quarter);
        }

        public Tensor Diagonal(Tensor t, int level) => t.select(4, _bandW[level]).select(2, _bandH[level]);

        public Tensor Readout(Tensor t, int level, KernelReadout readout) => readout == KernelReadout.Flatten
            ? Diagonal(t, level).mean([1L, 2L])
            : throw new InvalidOperationException("a global-average-pool readout needs every pixel pair");

        // q2 at the partner pixel (i + d, j + e); 1 outside the image, where entries are unused.
        private Tensor PartnerVariances(Tensor q, int level)
        {
            long dh = _bandH[level], dw = _bandW[level];
            return nn.functional.pad(q, [dw, dw, dh, dh], value: 1.0).unfold(1, 2 * dh + 1, 1).unfold(2, 2 * dw + 1, 1)
                .permute(0, 1, 3, 2, 4);
        }

        public Tensor OuterProducts(Tensor q1, Tensor q2, int level)
        {
            var partner = PartnerVariances(q2, level);
            var own = q1.reshape(q1.shape[0], 1, q1.shape[1], 1, q1.shape[2], 1);
            return own.mul(partner.unsqueeze(0)).reshape(-1, partner.shape[1], partner.shape[2], partner.shape[3], partner.shape[4]);
        }

        public Tensor SelfProducts(Tensor q, int level) => q.unsqueeze(2).unsqueeze(4).mul(PartnerVariances(q, level));

        public Tensor SamePixel(int level, ScalarType dtype, Device device)
        {
            using Scalar firstH = -_bandH[level], lastH = _bandH[level] + 1, firstW = -_bandW[level], lastW = _bandW[level] + 1;
            var h = arange(firstH, lastH, dtype: ScalarType.Int64, device: device).eq(Zero).reshape(1, -1, 1, 1);
            var w = arange(firstW, lastW, dtype: ScalarType.Int64, device: device).eq(Zero).reshape(1, 1, 1, -1);
            return h.logical_and(w);
        }
    }

    /// <summary>
    /// A forward pass that keeps only its inputs and value; the backward pass recomputes each
    /// chunk of image pairs under autograd and pulls that chunk's cotangent back.
    /// </summary>
    private sealed class Recomputing(ConvolutionalKernel kernel, Tensor x1, Tensor x2, bool symmetric)
        : AutogradKernelForward(kernel.Compute, kernel.ComputeSymmetric, x1, x2, symmetric)
    {
        private readonly ConvolutionalKernel _kernel = kernel;

        public override (Tensor? Grad1, Tensor? Grad2) Backward(Tensor cotangent, bool wantGrad1 = true, bool wantGrad2 = true)
        {
            RequireCotangentShape(cotangent);
            using var scope = NewDisposeScope();
            if (IsSymmetric)
                return (SymmetricBackward(cotangent).MoveToOuterDisposeScope(), null);
            if (!wantGrad1 && !wantGrad2)
                return (null, null);
            var grad1 = zeros_like(X1);
            var grad2 = zeros_like(X2);
            AccumulateCross(cotangent, grad1, grad2);
            return (wantGrad1 ? grad1.MoveToOuterDisposeScope() : null, wantGrad2 ? grad2.MoveToOuterDisposeScope() : null);
        }

        // Value = (K + K^T)/2 off the diagonal and K(x, x) on it, so
        // d sum(G * Value) = d sum(G_sym * K) off the diagonal + d sum(diag(G) * K(x, x)).
        private Tensor SymmetricBackward(Tensor cotangent)
        {
            var n = X1.shape[0];
            var offDiagonal = eye(n, dtype: cotangent.dtype, device: cotangent.device).neg_().add_(One, One);
            var symmetric = cotangent.add(cotangent.t(), One).mul_(Half).mul_(offDiagonal);
            var grad = zeros_like(X1);
            AccumulateCross(symmetric, grad, grad);
            long chunk = _kernel.PairsPerChunk;
            var diagonal = cotangent.diagonal();
            for (long start = 0; start < n; start += chunk)
            {
                using var chunkScope = NewDisposeScope();
                long length = Math.Min(chunk, n - start);
                var x = X1.narrow(0, start, length).detach().requires_grad_(true);
                using var enabled = enable_grad();
                var value = _kernel.SelfChain(_kernel.Images(x)).Value;
                var g = autograd.grad([value.mul(diagonal.narrow(0, start, length)).sum()], [x]);
                grad.narrow(0, start, length).add_(g[0], One);
            }
            return grad;
        }

        private void AccumulateCross(Tensor cotangent, Tensor grad1, Tensor grad2)
        {
            long n1 = X1.shape[0], n2 = X2.shape[0];
            var (rows, columns) = _kernel.ChunkShape(n1, n2);
            for (long r = 0; r < n1; r += rows)
            {
                long rl = Math.Min(rows, n1 - r);
                for (long c = 0; c < n2; c += columns)
                {
                    long cl = Math.Min(columns, n2 - c);
                    using var chunkScope = NewDisposeScope();
                    var a = X1.narrow(0, r, rl).detach().requires_grad_(true);
                    var b = X2.narrow(0, c, cl).detach().requires_grad_(true);
                    using var enabled = enable_grad();
                    var images1 = _kernel.Images(a);
                    var images2 = _kernel.Images(b);
                    var value = _kernel.Cross(images1, images2, _kernel.SelfChain(images1), _kernel.SelfChain(images2));
                    var g = autograd.grad([value.mul(cotangent.narrow(0, r, rl).narrow(1, c, cl)).sum()], [a, b]);
                    grad1.narrow(0, r, rl).add_(g[0], One);
                    grad2.narrow(0, c, cl).add_(g[1], One);
                }
            }
        }
    }
}
