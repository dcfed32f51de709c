using System.Text.RegularExpressions;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;

namespace Distill.Dashboard.Tests;

/// <summary>
/// The dashboard in a real browser against a running system (kernel service, distiller,
/// dashboard at DISTILL_DASHBOARD_URL). Skipped unless DISTILL_BROWSER_TESTS=1:
/// tests/browser/run-browser-tests.sh starts everything and runs them.
/// </summary>
[Trait("Category", "Browser")]
public sealed class BrowserTests
{
    private static readonly string BaseUrl = (Environment.GetEnvironmentVariable("DISTILL_DASHBOARD_URL") ?? "http://127.0.0.1:5053").TrimEnd('/') + "/";
    private static readonly string Screenshots = Environment.GetEnvironmentVariable("DISTILL_SCREENSHOTS") ?? Path.GetFullPath(".cache/screenshots");

    [SkippableFact]
    public async Task Start_watch_scrub_cancel_resume_and_export_a_run()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("DISTILL_BROWSER_TESTS") == "1", "set DISTILL_BROWSER_TESTS=1 (tests/browser/run-browser-tests.sh)");
        Directory.CreateDirectory(Screenshots);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Environment.GetEnvironmentVariable("DISTILL_CHROMIUM") ?? "/usr/bin/chromium",
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 800 }, AcceptDownloads = true });
        context.SetDefaultTimeout(60_000);
        var page = await context.NewPageAsync();
        try
        {
            await Walk(page);
        }
        catch
        {
            await Shoot(page, "failure");
            throw;
        }
    }

    private static async Task Walk(IPage page)
    {

        await SignIn(page);

        // Runs
        await Open(page, "");
        await page.Locator("[data-testid=runs-empty], [data-testid=run-link]").First.WaitForAsync();
        await Shoot(page, "runs");
        await CheckAccessibility(page, "runs");

        // New run: long enough that it is still running when the test cancels it.
        await Open(page, "runs/new");
        var steps = page.Locator("input[data-testid=field-steps], [data-testid=field-steps] input").First;
        await steps.FillAsync("100000");
        await steps.PressAsync("Tab");
        await Shoot(page, "new-run");
        await CheckAccessibility(page, "new-run");
        await page.Locator("[data-testid=start-run]").ClickAsync();
        await page.WaitForURLAsync(new Regex("/runs/run-[^/]+$"));
        await page.Locator("[data-interactive=true]").WaitForAsync();

        // The curve gains points, the grid appears.
        await page.WaitForFunctionAsync("() => Number(document.querySelector('[data-testid=loss-chart]')?.dataset.points ?? 0) > 0", null, new() { Timeout = 180_000 });
        var grid = page.Locator("[data-testid=snapshot-grid]");
        await grid.WaitForAsync(new() { Timeout = 180_000 });
        await page.WaitForFunctionAsync("() => { const i = document.querySelector('[data-testid=snapshot-grid]'); return i && i.complete && i.naturalWidth > 0; }");
        // Wait for a second snapshot, then move the slider to the first and see the image change.
        await page.WaitForFunctionAsync("() => /\\(\\d+\\/([2-9]|\\d\\d)\\)/.test(document.querySelector('[data-testid=snapshot-step]')?.textContent ?? '')", null, new() { Timeout = 180_000 });
        var before = await grid.GetAttributeAsync("src");
        var slider = page.Locator("[data-testid=step-slider] input[type=range], input[type=range][data-testid=step-slider]").First;
        await slider.FocusAsync();
        await slider.PressAsync("Home");
        await page.WaitForFunctionAsync("src => document.querySelector('[data-testid=snapshot-grid]')?.getAttribute('src') !== src", before);
        await page.WaitForFunctionAsync("() => { const i = document.querySelector('[data-testid=snapshot-grid]'); return i && i.complete && i.naturalWidth > 0; }");
        await Shoot(page, "run-detail");
        await CheckAccessibility(page, "run-detail");

        // Export at the chosen step: safetensors starts with its little-endian header length, then JSON.
        var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("[data-testid=export-safetensors]").ClickAsync());
        var file = Path.Combine(Screenshots, "..", "export.safetensors");
        await download.SaveAsAsync(file);
        var bytes = await File.ReadAllBytesAsync(file);
        Assert.True(bytes.Length > 16, $"export has {bytes.Length} bytes");
        var headerLength = BitConverter.ToInt64(bytes, 0);
        Assert.InRange(headerLength, 2, bytes.Length - 8);
        Assert.Equal((byte)'{', bytes[8]);
        var npz = await page.RunAndWaitForDownloadAsync(() => page.Locator("[data-testid=export-npz]").ClickAsync());
        var npzFile = Path.Combine(Screenshots, "..", "export.npz");
        await npz.SaveAsAsync(npzFile);
        Assert.Equal("PK"u8.ToArray(), (await File.ReadAllBytesAsync(npzFile))[..2]);

        // The distiller crashes and comes back: the open page must pick the run up again by itself,
        // showing steps beyond any it had shown before the crash.
        var shownBefore = await ShownStep(page);
        await RestartDistiller();
        await page.WaitForFunctionAsync("s => Number(document.querySelector('[data-testid=run-step] b')?.textContent ?? 0) > s", shownBefore + 20, new() { Timeout = 180_000 });
        Assert.DoesNotMatch(new Regex(@"^\s*at [\w.`<>]+\(", RegexOptions.Multiline), await page.Locator("body").InnerTextAsync());
        await Shoot(page, "run-after-restart");

        // Cancel, resume with more steps, and cancel again so that the second run has the machine.
        await page.Locator("[data-testid=cancel-run]").ClickAsync();
        await page.Locator("[data-testid=run-state]", new() { HasTextString = "Cancelled" }).WaitForAsync();
        await page.Locator("[data-testid=resume-run]").ClickAsync();
        await page.Locator("[data-testid=resume-confirm]").ClickAsync();
        await page.Locator("[data-testid=run-state]", new() { HasTextRegex = new Regex("Queued|Running") }).WaitForAsync();
        await page.Locator("[data-testid=cancel-run]").ClickAsync();
        await page.Locator("[data-testid=run-state]", new() { HasTextString = "Cancelled" }).WaitForAsync();

        // One small network trained on the cancelled run's images by the distiller.
        foreach (var (field, value) in new[] { ("transfer-seeds", "1"), ("transfer-width", "8"), ("transfer-epochs", "20"), ("transfer-max-test", "100") })
        {
            var input = page.Locator($"input[data-testid={field}], [data-testid={field}] input").First;
            await input.FillAsync(value);
            await input.PressAsync("Tab");
        }
        await page.Locator("[data-testid=transfer]").ClickAsync();
        var transfer = page.Locator("[data-testid=transfer-result]");
        await transfer.WaitForAsync(new() { Timeout = 180_000 });
        Assert.Matches(new Regex(@"width 8.*\b100\b", RegexOptions.Singleline), await transfer.InnerTextAsync());
        await Shoot(page, "transfer");

        // A second, shorter run to compare with the first.
        var first = page.Url.Split('/')[^1];
        await Open(page, "runs/new");
        var steps2 = page.Locator("input[data-testid=field-steps], [data-testid=field-steps] input").First;
        await steps2.FillAsync("60");
        await steps2.PressAsync("Tab");
        await page.Locator("[data-testid=start-run]").ClickAsync();
        await page.WaitForURLAsync(new Regex("/runs/run-[^/]+$"));
        var second = page.Url.Split('/')[^1];
        await page.Locator("[data-testid=snapshot-grid]").WaitForAsync(new() { Timeout = 180_000 });
        await Open(page, $"compare?ids={first},{second}");
        await page.Locator("[data-testid=spec-diff]").WaitForAsync();
        await page.WaitForFunctionAsync("() => [...document.querySelectorAll('[data-testid=snapshot-grid]')].filter(i => i.complete && i.naturalWidth > 0).length == 2");
        await Shoot(page, "compare");
        await CheckAccessibility(page, "compare");

        // The runs table with the two runs.
        await Open(page, "");
        await page.Locator("[data-testid=run-link]").First.WaitForAsync();
        await Shoot(page, "runs-with-runs");
        await CheckAccessibility(page, "runs-with-runs");

        // Kernel services.
        await Open(page, "kernels");
        await page.Locator("[data-testid=kernels-table]").WaitForAsync();
        await Shoot(page, "kernels");
        await CheckAccessibility(page, "kernels");
    }

    /// <summary>Every page asks for the access key first; a wrong key is refused with a message.</summary>
    private static async Task SignIn(IPage page)
    {
        var key = Environment.GetEnvironmentVariable("DISTILL_DASHBOARD_ACCESS_KEY");
        Assert.False(string.IsNullOrEmpty(key), "DISTILL_DASHBOARD_ACCESS_KEY is not set (tests/browser/run-browser-tests.sh sets it)");
        await page.GotoAsync(BaseUrl + "kernels");
        await page.WaitForURLAsync(new Regex("/signin\\?"));
        await CheckAccessibility(page, "signin");
        await page.Locator("#key").FillAsync(key + "-wrong");
        await page.Locator("button[type=submit]").ClickAsync();
        await page.Locator("[role=alert]", new() { HasTextString = "not right" }).WaitForAsync();
        await Shoot(page, "signin-refused");
        await page.Locator("#key").FillAsync(key);
        await page.Locator("button[type=submit]").ClickAsync();
        // Back where it was sent from, now signed in.
        await page.WaitForURLAsync(new Regex("/kernels$"));
        await page.Locator("[data-interactive=true]").WaitForAsync();
    }

    private static async Task<long> ShownStep(IPage page) =>
        long.Parse(await page.Locator("[data-testid=run-step] b").InnerTextAsync(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>SIGKILLs the distiller and starts it again on the same port and data folder.</summary>
    private static async Task RestartDistiller()
    {
        var script = Environment.GetEnvironmentVariable("DISTILL_RESTART_DISTILLER");
        Assert.False(string.IsNullOrEmpty(script), "DISTILL_RESTART_DISTILLER is not set (tests/browser/run-browser-tests.sh sets it)");
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("bash", [script!]) { RedirectStandardError = true })!;
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"restarting the distiller failed: {error}");
    }

    private static async Task Open(IPage page, string path)
    {
        await page.GotoAsync(BaseUrl + path);
        // The circuit is up once the layout has rendered interactively; no fixed sleeps.
        try
        {
            await page.Locator("[data-interactive=true]").WaitForAsync();
        }
        catch (TimeoutException)
        {
            await Shoot(page, "failed-" + (path.Length == 0 ? "home" : path.Replace('/', '-')));
            throw;
        }
    }

    private static Task Shoot(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Screenshots, $"{name}.png") });

    private static async Task CheckAccessibility(IPage page, string name)
    {
        var results = await page.RunAxe();
        var bad = results.Violations.Where(v => v.Impact is "serious" or "critical")
            .Select(v => $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Target?.ToString()))}").ToList();
        Assert.True(bad.Count == 0, $"{name}: accessibility violations:\n" + string.Join("\n", bad));
    }
}
