using Distill.Core.Output;
using SkiaSharp;

namespace Distill.Core.Tests.Output;

public sealed class ImageGridTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"distill-{Guid.NewGuid():N}.png");

    [Fact]
    public void WritePng_PutsEachImageInItsClassRow_Scaled_AndClipped()
    {
        // Two 2x2 grey images of class 1 and one of class 0; three classes, so row 2 stays empty.
        float[] pixels = [0f, 0.5f, 1f, 2f, /* class 1, column 0 */ 0.25f, 0.25f, 0.25f, 0.25f, /* class 0 */ -1f, 0.2f, 0.4f, 0.6f /* class 1, column 1 */];
        ImageGrid.WritePng(_path, pixels, [1, 0, 1], channels: 1, height: 2, width: 2, classCount: 3, scale: 2);

        using var decoded = SKBitmap.Decode(_path);
        // Cells of 2*2 + 2 padding, plus the outer padding: 2 columns x 3 rows.
        Assert.Equal(2 * 6 + 2, decoded.Width);
        Assert.Equal(3 * 6 + 2, decoded.Height);
        byte At(int row, int column, int y, int x) => decoded.GetPixel(2 + column * 6 + x, 2 + row * 6 + y).Red;

        Assert.Equal(64, At(0, 0, 0, 0));        // 0.25
        Assert.Equal(0, At(1, 0, 0, 0));         // 0
        Assert.Equal(0, At(1, 0, 1, 1));         // scaled: still the same source pixel
        Assert.Equal(128, At(1, 0, 0, 2));       // 0.5
        Assert.Equal(255, At(1, 0, 2, 2));       // 2 clipped to 1
        Assert.Equal(0, At(1, 1, 0, 0));         // -1 clipped to 0
        Assert.Equal(153, At(1, 1, 3, 3));       // 0.6
        Assert.Equal(255, At(2, 0, 0, 0));       // empty row: background
        Assert.Equal(255, decoded.GetPixel(0, 0).Red);
    }

    [Fact]
    public void WritePng_ColourImages_KeepTheirChannels()
    {
        // One 1x1 RGB image, channel planes in order.
        ImageGrid.WritePng(_path, [1f, 0.5f, 0f], [0], channels: 3, height: 1, width: 1, classCount: 1, scale: 1);
        using var decoded = SKBitmap.Decode(_path);
        var colour = decoded.GetPixel(2, 2);
        Assert.Equal((255, 128, 0), (colour.Red, colour.Green, colour.Blue));
    }

    public void Dispose() => File.Delete(_path);
}
