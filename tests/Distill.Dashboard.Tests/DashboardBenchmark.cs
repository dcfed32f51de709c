using System.Globalization;
using System.Text.Json;
using Distill.Client;
using Grpc.Net.Client;
using Microsoft.Playwright;

namespace Distill.Dashboard.Tests;

/// <summary>
/// The dashboard-live benchmark (bench/run.sh dashboard-live): several browser pages watch the
/// run-detail page of a live run for its whole length, twice (a cold process, then warm), and the dashboard's own cost is
/// measured: its process's CPU time over the run as a fraction of one core, the step points a
/// page never drew, and the delay from an event leaving the distiller (RunEvent.time) to its
/// point being drawn on a page. Skipped unless DISTILL_BENCHMARK=1; bench/run.sh starts the
/// system and sets DISTILL_DASHBOARD_URL, DISTILL_DISTILLER_URL, DISTILL_DASHBOARD_PID and
/// DISTILL_BENCH_RESULT (the file that receives the result line).
/// </summary>
[Trait("Category", "Benchmark")]
public sealed class DashboardBenchmark
{
    // Installed before any page script: wraps Plotly.extendTraces (which Plotly.Blazor's interop
    // calls for every ExtendTrace) and records, per drawn loss point, its step and the wall-clock
    // time once the draw has finished. Only the browser pays for it, not the dashboard.
    private const string RecordDraws = """
        (() => {
          window.__drawn = [];
          const hook = () => {
            const P = window.Plotly;
            if (!P) return false;
            if (P.__distillWrapped) return true;
            const extend = P.extendTraces;
            P.extendTraces = function (id, data, ...rest) {
              const result = extend.call(this, id, data, ...rest);
              const xs = (data && data.x && data.x[0]) || [];
              const isLoss = id === 'loss-chart' || (id && id.id === 'loss-chart');
              Promise.resolve(result).then(() => {
                if (!isLoss) return;
                const t = Date.now();
                for (const x of xs) window.__drawn.push([Number(x), t]);
              });
              return result;
            };
            P.__distillWrapped = true;
            return true;
          };
          const timer = setInterval(() => { if (hook()) clearInterval(timer); }, 5);
        })();
        """;

    private static string Env(string name, string fallback) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : fallback;
    private static int EnvInt(string name, int fallback) => int.Parse(Env(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

    [SkippableFact]
    public async Task Pages_watch_one_live_run()
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("DISTILL_BENCHMARK") == "1", "set DISTILL_BENCHMARK=1 (bench/run.sh dashboard-live)");
        var dashboardUrl = Env("DISTILL_DASHBOARD_URL", "http://127.0.0.1:5053").TrimEnd('/') + "/";
        var distillerUrl = Env("DISTILL_DISTILLER_URL", "http://127.0.0.1:5052");
        var dashboardPid = EnvInt("DISTILL_DASHBOARD_PID", 0);
        Assert.True(dashboardPid > 0, "DISTILL_DASHBOARD_PID is not set");
        var pages = EnvInt("DISTILL_BENCH_PAGES", 5);
        var steps = EnvInt("DISTILL_BENCH_STEPS", 300);

        using var channel = GrpcChannel.ForAddress(distillerUrl);
        var client = new DistillerClient(channel);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Env("DISTILL_CHROMIUM", "/usr/bin/chromium"),
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"],
        });
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 800 } });
        context.SetDefaultTimeout(120_000);
        await context.AddInitScriptAsync(RecordDraws);

        // The first run is watched from a freshly started dashboard, so its figure includes the
        // just-in-time compilation of everything a live page runs (paid once per process); the
        // second, the same run watched by the same process, is the steady cost.
        var cold = await WatchOneRunAsync(client, context, dashboardUrl, dashboardPid, pages, steps);
        var warm = await WatchOneRunAsync(client, context, dashboardUrl, dashboardPid, pages, steps);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"result pages={pages} steps={warm.Steps} dashboard_cpu={warm.Cpu:0.000} dashboard_cpu_seconds={warm.Cpu * warm.Seconds:0.00} cold_dashboard_cpu={cold.Cpu:0.000} cold_dashboard_cpu_seconds={cold.Cpu * cold.Seconds:0.00} events_missed={cold.Missed + warm.Missed} " +
            $"p95_update_ms={warm.P95:0} p50_update_ms={warm.P50:0} step_events={warm.StepEvents} seconds={warm.Seconds:0.0} cold_seconds={cold.Seconds:0.0} state={warm.State} run={warm.Run}");
        Console.WriteLine(line);
        var resultFile = Environment.GetEnvironmentVariable("DISTILL_BENCH_RESULT");
        if (!string.IsNullOrEmpty(resultFile)) await File.AppendAllTextAsync(resultFile, line + "\n");
    }

    private sealed record Watched(string Run, long Steps, RunStatus State, int StepEvents, double Cpu, int Missed, double P95, double P50, double Seconds);

    /// <summary>Starts a run, opens pages on it, and measures the dashboard from all pages watching to the run's end with every page drawn.</summary>
    private static async Task<Watched> WatchOneRunAsync(DistillerClient client, IBrowserContext context, string dashboardUrl, int dashboardPid, int pages, int steps)
    {
        var run = await client.StartRunAsync(new RunSpecification
        {
            Dataset = "mnist",
            SupportPerClass = EnvInt("DISTILL_BENCH_IPC", 1),
            Steps = steps,
            TargetBatch = EnvInt("DISTILL_BENCH_TARGET_BATCH", 1000),
            EvaluateEvery = EnvInt("DISTILL_BENCH_EVAL_EVERY", 50),
            CheckpointEvery = EnvInt("DISTILL_BENCH_CHECKPOINT_EVERY", 50),
        });
        var id = run.Id;

        // The test's own watch (follow=false ends with the event that ends the run): the events
        // WatchRun delivered, with the times they left the distiller.
        var watch = Task.Run(async () =>
        {
            var events = new List<RunEventRecord>();
            await foreach (var e in client.WatchRunAsync(id)) events.Add(e);
            return events;
        });

        var opened = new List<IPage>();
        for (var i = 0; i < pages; i++)
        {
            var page = await context.NewPageAsync();
            await page.GotoAsync(dashboardUrl + "runs/" + id);
            await page.Locator("[data-interactive=true]").WaitForAsync();
            await page.Locator("#loss-chart").WaitForAsync(new() { State = WaitForSelectorState.Attached });
            opened.Add(page);
        }

        var cpu0 = CpuTicks(dashboardPid);
        var wall0 = DateTimeOffset.UtcNow;
        var events = await watch.WaitAsync(TimeSpan.FromMinutes(30));
        var stepEvents = events.OfType<StepEvent>().ToList();
        var expected = stepEvents.Select(s => s.Step).Distinct().Count();
        // Let the last batch reach the pages (paced by the watcher), but not forever.
        var deadline = DateTimeOffset.UtcNow.AddSeconds(10);
        foreach (var page in opened)
        {
            while (DateTimeOffset.UtcNow < deadline && await TraceLength(page) < expected) await Task.Delay(100);
        }
        var cpu1 = CpuTicks(dashboardPid);
        var wall1 = DateTimeOffset.UtcNow;

        var eventTime = stepEvents.GroupBy(s => s.Step).ToDictionary(g => g.Key, g => g.First().Time);
        var missed = 0;
        var delays = new List<double>();
        foreach (var page in opened)
        {
            var drawnX = await page.EvaluateAsync<double[]>("() => Array.from(document.getElementById('loss-chart')?.data?.[0]?.x ?? [], Number)");
            var shown = drawnX.Select(x => (long)x).ToHashSet();
            missed += eventTime.Keys.Count(step => !shown.Contains(step));
            var drawn = await page.EvaluateAsync<JsonElement>("() => window.__drawn");
            var firstDrawn = new Dictionary<long, long>();
            foreach (var pair in drawn.EnumerateArray())
            {
                var step = (long)pair[0].GetDouble();
                firstDrawn.TryAdd(step, (long)pair[1].GetDouble());
            }
            foreach (var (step, time) in eventTime)
            {
                // Only events that left the distiller while the page was watching.
                if (time < wall0 || !firstDrawn.TryGetValue(step, out var at)) continue;
                delays.Add(at - time.ToUnixTimeMilliseconds());
            }
        }
        foreach (var page in opened) await page.CloseAsync();
        delays.Sort();
        var p95 = delays.Count == 0 ? double.NaN : delays[Math.Clamp((int)Math.Ceiling(0.95 * delays.Count) - 1, 0, delays.Count - 1)];
        var p50 = delays.Count == 0 ? double.NaN : delays[delays.Count / 2];
        var seconds = (wall1 - wall0).TotalSeconds;
        var final = await client.GetRunAsync(id);
        return new Watched(id, final.Step, final.State, expected, (cpu1 - cpu0) / TicksPerSecond / seconds, missed, p95, p50, seconds);
    }

    private static async Task<int> TraceLength(IPage page) =>
        await page.EvaluateAsync<int>("() => document.getElementById('loss-chart')?.data?.[0]?.x?.length ?? 0");

    // Linux reports utime and stime in clock ticks of 1/100 s (USER_HZ).
    private const double TicksPerSecond = 100;

    /// <summary>utime + stime of a process, from /proc/PID/stat (fields 14 and 15).</summary>
    private static long CpuTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state), so field N is fields[N - 3].
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }
}
