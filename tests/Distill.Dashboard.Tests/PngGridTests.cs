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
}
