using Distill.Client;
using Distill.Dashboard.Services;

namespace Distill.Dashboard.Tests;

public sealed class PngGridTests
{
    [Fact]
    public void Renders_a_png_with_a_row_per_class()
    {
        var png = PngGrid.Render(FakeDashboardService.Snapshot(5, classes: 3));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png[..4]);
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        var scale = PngGrid.ScaleFor(4);
        Assert.Equal(3 * (4 * scale + PngGrid.Padding) + PngGrid.Padding, bitmap.Height);
        Assert.Equal(4 * scale + 2 * PngGrid.Padding, bitmap.Width);
    }

    private static SnapshotInfo Single(float[] pixels, float[]? preprocessed = null) =>
        new("runs/r/snapshots/0", 0, DateTimeOffset.UnixEpoch, new TensorData(pixels, [1, 1, 1, pixels.Length]),
            preprocessed is null ? null : new TensorData(preprocessed, [1, 1, 1, preprocessed.Length]), null, [0], ["c0"]);

    [Fact]
    public void Preprocessed_view_scales_by_the_snapshots_own_range()
    {
        var (values, shape) = PngGrid.Values(Single([0, 0, 0], [-2, 0, 6]), GridView.Preprocessed);
        Assert.Equal([0f, 0.25f, 1f], values);
        Assert.Equal([1, 1, 1, 3], shape);
        Assert.Throws<ArgumentException>(() => PngGrid.Values(Single([0, 0, 0]), GridView.Preprocessed));
    }

    [Fact]
    public void Change_view_is_grey_at_zero_and_white_or_black_at_the_largest_change()
    {
        var start = Single([0.5f, 0.5f, 0.5f, 0.5f]);
        var now = Single([0.5f, 0.9f, 0.1f, 0.7f]);
        var (values, _) = PngGrid.Values(now, GridView.Change, start);
        Assert.Equal(0.5f, values[0], 5);
        Assert.Equal(1f, values[1], 5);
        Assert.Equal(0f, values[2], 5);
        Assert.Equal(0.75f, values[3], 5);
        using var bitmap = SkiaSharp.SKBitmap.Decode(PngGrid.Render(now, GridView.Change, start));
        var scale = PngGrid.ScaleFor(1);
        Assert.Equal(128, bitmap.GetPixel(PngGrid.Padding, PngGrid.Padding).Red);
        Assert.Equal(255, bitmap.GetPixel(PngGrid.Padding + scale, PngGrid.Padding).Red);
        Assert.Equal(0, bitmap.GetPixel(PngGrid.Padding + 2 * scale, PngGrid.Padding).Red);
    }

    [Theory]
    [InlineData(GridView.Pixels, null)]
    [InlineData(GridView.Preprocessed, "preprocessed")]
    [InlineData(GridView.Change, "change")]
    public void View_names_round_trip(GridView view, string? name)
    {
        Assert.Equal(name, PngGrid.QueryName(view));
        Assert.Equal(view, PngGrid.ParseView(name));
    }
}
