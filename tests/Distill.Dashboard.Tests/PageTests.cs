using Bunit;
using Distill.Client;
using Distill.Dashboard.Components.Pages;
using Distill.Dashboard.Components.Shared;
using Distill.Dashboard.Services;
using Grpc.Core;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.DependencyInjection;

namespace Distill.Dashboard.Tests;

public sealed class RunsPageTests : DashboardTestBase
{
    [Fact]
    public void Lists_runs_with_state_progress_and_accuracy()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        Fake.Runs.Add(FakeDashboardService.Run("run-b", RunStatus.Succeeded, 100, 100));
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.Equal(2, page.FindAll("[data-testid=run-link]").Count));
        Assert.Contains("Running", page.Markup);
        Assert.Contains("40 / 100", page.Markup);
        Assert.Contains("12.5 steps/s", page.Markup);
        Assert.Contains("80.0 %", page.Markup);
        Assert.Contains("85.0 %", page.Markup);
    }

    [Fact]
    public void Loading_then_rows()
    {
        Fake.Hold = new TaskCompletionSource();
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.Contains("Loading runs", page.Markup));
        Fake.Hold.SetResult();
        page.WaitForAssertion(() => Assert.Single(page.FindAll("[data-testid=run-link]")));
    }

    [Fact]
    public void Active_runs_refresh_by_themselves()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a", RunStatus.Running, 40, 100));
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.Contains("40 / 100", page.Markup));
        Fake.Runs[0] = FakeDashboardService.Run("run-a", RunStatus.Running, 80, 100);
        page.WaitForAssertion(() => Assert.Contains("80 / 100", page.Markup), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void Empty_list_says_how_to_start()
    {
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=runs-empty]")));
    }

    [Fact]
    public void Unreachable_distiller_shows_a_message_not_a_trace()
    {
        Fake.Failure = FakeDashboardService.Unavailable();
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.Contains("Cannot reach the distiller", page.Find("[data-testid=runs-error]").TextContent));
        Assert.DoesNotContain("   at ", page.Markup);
    }

    [Fact]
    public void Pages_through_list_runs_with_tokens()
    {
        for (int i = 0; i < 25; i++) Fake.Runs.Add(FakeDashboardService.Run($"run-{i:00}", RunStatus.Succeeded));
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.Equal(20, page.FindAll("[data-testid=run-link]").Count));
        Assert.Equal(20, Fake.Queries[^1].PageSize);
    }

    [Fact]
    public void Loss_sparkline_per_run_fetched_once_per_step()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a", RunStatus.Succeeded, 100, 100));
        Fake.Runs.Add(FakeDashboardService.Run("run-b", RunStatus.Succeeded, 0, 100));
        Fake.Losses["run-a"] = [1, 0.1, 0.01];
        var page = Render<Runs>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=loss-run-a] polyline")));
        var points = page.Find("[data-testid=loss-run-a] polyline").GetAttribute("points")!.Split(' ');
        // Log scale: three evenly falling points from the top left to the bottom right.
        Assert.Equal(["1,1", "40,10", "79,19"], points);
        Assert.Empty(page.FindAll("[data-testid=loss-run-b] polyline"));  // no steps yet: not even asked
        page.FindComponent<MudBlazor.MudTable<RunInfo>>().InvokeAsync(() => page.FindComponent<MudBlazor.MudTable<RunInfo>>().Instance.ReloadServerData());
        page.WaitForAssertion(() => Assert.True(Fake.Queries.Count >= 2));
        Assert.Equal([("run-a", 100L)], Fake.LossCalls);
    }

    [Fact]
    public void Cancel_calls_the_distiller()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<Runs>();
        page.WaitForAssertion(() => page.Find("button[aria-label='Cancel run-a']"));
        page.Find("button[aria-label='Cancel run-a']").Click();
        page.WaitForAssertion(() => Assert.Equal(["run-a"], Fake.Cancelled));
    }
}

public sealed class NewRunPageTests : DashboardTestBase
{
    [Fact]
    public void Shows_the_distillers_defaults()
    {
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.Contains("Default 0.01", page.Markup));
        Assert.Contains("Default 5000", page.Markup);
        Assert.Contains("Default 1e-6", page.Markup);
        Assert.Contains("Default 100", page.Markup);
        Assert.Contains("Default 50", page.Markup);
        Assert.Equal("0.01", page.Find("input[data-testid=field-lr], [data-testid=field-lr] input").GetAttribute("value"));
    }

    [Fact]
    public async Task Starts_the_run_and_opens_it()
    {
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.Contains("mnist", page.Markup));
        await page.InvokeAsync(() => page.Instance.SubmitAsync());
        var spec = Assert.Single(Fake.Started);
        Assert.Equal("mnist", spec.Dataset);
        Assert.Equal(0.01, spec.LearningRate);
        Assert.Equal(5000, spec.TargetBatch);
        Assert.EndsWith("runs/run-new", Services.GetRequiredService<NavigationManager>().Uri);
    }

    [Fact]
    public async Task Server_field_violations_show_at_their_fields()
    {
        Fake.StartFailure = new DistillerException(StatusCode.InvalidArgument, "invalid spec",
            fieldViolations: new Dictionary<string, string> { ["spec.steps"] = "KIP needs 1 or more steps, got 0", ["spec.learning_rate"] = "must be positive" });
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.Contains("mnist", page.Markup));
        await page.InvokeAsync(() => page.Instance.SubmitAsync());
        page.WaitForAssertion(() => Assert.Contains("KIP needs 1 or more steps", page.Markup));
        Assert.Contains("must be positive", page.Markup);
        Assert.Contains("Please fix the fields marked below", page.Find("[data-testid=form-error]").TextContent);
    }

    [Fact]
    public async Task A_clone_of_a_feature_pool_run_shows_the_pool_and_starts_the_same_run()
    {
        var original = RunFormTests.PoolRun();
        Fake.Runs.Add(FakeDashboardService.Run("run-pool") with { Spec = original });
        Services.GetRequiredService<NavigationManager>().NavigateTo("runs/new?clone=run-pool");
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.Equal("128", page.Find("input[data-testid=field-pool-size], [data-testid=field-pool-size] input").GetAttribute("value")));
        Assert.Equal("32", page.Find("input[data-testid=field-image-height], [data-testid=field-image-height] input").GetAttribute("value"));

        Fake.StartFailure = new DistillerException(StatusCode.InvalidArgument, "invalid spec",
            fieldViolations: new Dictionary<string, string> { ["spec.feature_pool.pool_size"] = "must be at most 4096, got 5000", ["spec.kernel.convolutional.image_height"] = "must be 8 or more" });
        await page.InvokeAsync(() => page.Instance.SubmitAsync());
        page.WaitForAssertion(() => Assert.Contains("must be at most 4096", page.Markup));
        Assert.Contains("must be 8 or more", page.Markup);
        Assert.Contains("Please fix the fields marked below", page.Find("[data-testid=form-error]").TextContent);  // both shown at their fields

        Fake.StartFailure = null;
        await page.InvokeAsync(() => page.Instance.SubmitAsync());
        Assert.Equal(original, Assert.Single(Fake.Started));
    }

    [Fact]
    public void Size_hint_follows_the_images_per_class()
    {
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.Contains("Support set 10 images", page.Find("[data-testid=size-hint]").TextContent));
        page.Find("[data-testid=field-support] input, input[data-testid=field-support]").Change("50");
        page.WaitForAssertion(() => Assert.Contains("Support set 500 images (50 per class x 10 classes)", page.Find("[data-testid=size-hint]").TextContent));
        var text = page.Find("[data-testid=size-hint]").TextContent;
        Assert.Contains("target batch 5000", text);
        Assert.Contains("5000 x 500 = 2,500,000 entries", text);
        Assert.Contains("about 19.1 MB at float64", text);  // 2.5e6 x 8 bytes / 2^20
    }

    [Fact]
    public void Unreachable_distiller_still_lets_you_type_a_dataset()
    {
        Fake.Failure = FakeDashboardService.Unavailable();
        var page = Render<NewRun>();
        page.WaitForAssertion(() => Assert.Contains("Could not load the datasets", page.Find("[data-testid=form-load-error]").TextContent));
    }
}

public sealed class RunDetailPageTests : DashboardTestBase
{
    [Fact]
    public void Loading_then_the_run()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        Fake.Hold = new TaskCompletionSource();
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        Assert.NotNull(page.Find("[data-testid=run-loading]"));
        Fake.Hold.SetResult();
        page.WaitForAssertion(() => Assert.Contains("Running", page.Find("[data-testid=run-state]").TextContent));
    }

    [Fact]
    public void Live_events_extend_the_curves_and_bring_the_grid()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=no-snapshots]")));
        Assert.Equal(1, Fake.WatcherCount);
        var t = DateTimeOffset.UnixEpoch;
        page.InvokeAsync(() => Fake.Push(
            new StepEvent(1, t, 1, 100, 0.5, 10),
            new StepEvent(2, t, 2, 100, 0.4, 10),
            new EvaluationEvent(3, t, 2, 0.7, 0.1),
            new CheckpointEvent(4, t, 2, "runs/run-a/snapshots/2")));
        // The page appends to the charts only once they are drawn, which needs a browser: the
        // points wait; the grid and the log do not.
        page.WaitForAssertion(() => Assert.Equal("2", page.Find("[data-testid=snapshot-grid]").GetAttribute("data-step")));
        Assert.Contains("runs/run-a/snapshots/2.png", page.Find("[data-testid=snapshot-grid]").GetAttribute("src"));
        Assert.Contains("evaluation at step 2", page.Find("[data-testid=event-log]").TextContent);
        page.WaitForAssertion(() => Assert.NotEmpty(page.FindAll("[data-testid=label-flag]")));
        Assert.Contains("step=2", page.Find("[data-testid=export-safetensors]").GetAttribute("href"));
    }

    [Fact]
    public void Live_batches_rerender_their_parts_not_the_page_until_the_state_changes()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        var t = DateTimeOffset.UnixEpoch;
        // The first points, evaluation and snapshot change the page's captions and bring the slider: a page render.
        page.InvokeAsync(() => Fake.Push(
            new StepEvent(1, t, 1, 100, 0.5, 10),
            new EvaluationEvent(2, t, 1, 0.6, 0.1),
            new CheckpointEvent(3, t, 1, "runs/run-a/snapshots/1")));
        page.WaitForAssertion(() => Assert.Equal("1", page.Find("[data-testid=snapshot-grid]").GetAttribute("data-step")));
        var renders = page.Instance.PageRenders;

        // After that, a batch re-renders the progress line, the image panels and the log only.
        page.InvokeAsync(() => Fake.Push(
            new StepEvent(4, t, 2, 100, 0.4, 10),
            new EvaluationEvent(5, t, 2, 0.7, 0.1),
            new CheckpointEvent(6, t, 2, "runs/run-a/snapshots/2")));
        page.WaitForAssertion(() => Assert.Equal("2", page.Find("[data-testid=snapshot-grid]").GetAttribute("data-step")));
        Assert.Contains("evaluation at step 2", page.Find("[data-testid=event-log]").TextContent);
        Assert.Equal("Step 2 of 100", page.Find("[data-testid=run-step]").TextContent);
        Assert.Contains("step=2", page.Find("[data-testid=export-safetensors]").GetAttribute("href"));
        Assert.Equal(renders, page.Instance.PageRenders);

        page.InvokeAsync(() => Fake.Push(new StateChangedEvent(7, t, RunStatus.Cancelled, "")));
        page.WaitForAssertion(() => Assert.True(page.Instance.PageRenders > renders));
    }

    [Fact]
    public void Step_events_move_the_progress_line()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=run-step]")));
        var t = DateTimeOffset.UnixEpoch;
        page.InvokeAsync(() => Fake.Push(new StepEvent(1, t, 7, 100, 0.5, 10)));
        page.WaitForAssertion(() => Assert.Equal("Step 7 of 100", page.Find("[data-testid=run-step]").TextContent));
        page.InvokeAsync(() => Fake.Push(new StepEvent(2, t, 8, 100, 0.4, 10)));
        page.WaitForAssertion(() => Assert.Equal("Step 8 of 100", page.Find("[data-testid=run-step]").TextContent));
    }

    [Fact]
    public void Phase_events_show_under_the_progress_line_until_the_evaluation_ends()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=run-step]")));
        Assert.Empty(page.FindAll("[data-testid=run-phase]"));
        var t = DateTimeOffset.UnixEpoch;
        page.InvokeAsync(() => Fake.Push(new PhaseEvent(1, t, RunPhase.SupportGram, 400, 62625, 125250, TimeSpan.FromSeconds(300))));
        page.WaitForAssertion(() => Assert.Equal("Support Gram at step 400: 62,625 of 125,250 image pairs, 5m 00s",
            page.Find("[data-testid=run-phase]").TextContent));
        page.InvokeAsync(() => Fake.Push(new PhaseEvent(1, t, RunPhase.Evaluation, 400, 2000, 10000, TimeSpan.FromSeconds(65))));
        page.WaitForAssertion(() => Assert.Equal("Evaluation at step 400: 2,000 of 10,000 test images, 1m 05s",
            page.Find("[data-testid=run-phase]").TextContent));
        Assert.DoesNotContain("2,000 of 10,000", page.Find("[data-testid=event-log]").TextContent);
        page.InvokeAsync(() => Fake.Push(new EvaluationEvent(2, t, 400, 0.5, 0.1)));
        page.WaitForAssertion(() => Assert.Empty(page.FindAll("[data-testid=run-phase]")));
    }

    [Fact]
    public void A_feature_pool_set_up_shows_its_networks_until_the_first_step()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=run-step]")));
        var t = DateTimeOffset.UnixEpoch;
        page.InvokeAsync(() => Fake.Push(new PhaseEvent(1, t, RunPhase.FeaturePoolSetup, 0, 32, 128, TimeSpan.FromSeconds(90))));
        page.WaitForAssertion(() => Assert.Equal("Feature pool set-up: 32 of 128 networks, 1m 30s",
            page.Find("[data-testid=run-phase]").TextContent));
        page.InvokeAsync(() => Fake.Push(new StepEvent(2, t, 1, 100, 0.5, 1)));
        page.WaitForAssertion(() => Assert.Empty(page.FindAll("[data-testid=run-phase]")));
    }

    [Fact]
    public async Task Smoothing_and_time_axis_redraw_the_curves()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=no-snapshots]")));
        var t = DateTimeOffset.UnixEpoch;
        await page.InvokeAsync(() => Fake.Push(
            new StateChangedEvent(1, t, RunStatus.Running, ""),
            new StepEvent(2, t.AddSeconds(2), 1, 100, 1.0, 4),
            new StepEvent(3, t.AddSeconds(3), 2, 100, 0.0, 5),
            new StepEvent(4, t.AddSeconds(5), 3, 100, 0.5, 6),
            new EvaluationEvent(5, t.AddSeconds(6), 3, 0.7, 0.1)));
        await page.InvokeAsync(() => page.Instance.SmoothingChangedAsync(0.5));
        var raw = (Plotly.Blazor.Traces.Scatter)page.Instance.lossData[0];
        var smoothed = (Plotly.Blazor.Traces.Scatter)page.Instance.lossData[1];
        Assert.Equal([1.0, 0.0, 0.5], raw.Y.Cast<double>());
        Assert.Equal([1.0, 0.5, 0.5], smoothed.Y.Cast<double>());  // EMA: 0.5*1 + 0.5*0, then 0.5*0.5 + 0.5*0.5
        Assert.Equal(Plotly.Blazor.Traces.ScatterLib.VisibleEnum.True, smoothed.Visible);
        Assert.Equal([4.0, 5.0, 6.0], ((Plotly.Blazor.Traces.Scatter)page.Instance.speedData[0]).Y.Cast<double>());
        Assert.Equal([1L, 2L, 3L], raw.X.Cast<long>());

        await page.InvokeAsync(() => page.Instance.AxisChangedAsync(CurveAxis.Time));
        raw = (Plotly.Blazor.Traces.Scatter)page.Instance.lossData[0];
        Assert.Equal([2.0, 3.0, 5.0], raw.X.Cast<double>());  // seconds since the run's first event
        Assert.Equal([6.0], ((Plotly.Blazor.Traces.Scatter)page.Instance.accuracyData[0]).X.Cast<double>());

        await page.InvokeAsync(() => page.Instance.SmoothingChangedAsync(0));
        Assert.Equal([1.0, 0.0, 0.5], ((Plotly.Blazor.Traces.Scatter)page.Instance.lossData[1]).Y.Cast<double>());
        Assert.Equal(Plotly.Blazor.Traces.ScatterLib.VisibleEnum.False, ((Plotly.Blazor.Traces.Scatter)page.Instance.lossData[1]).Visible);
    }

    [Fact]
    public void Exponential_moving_average_of_a_known_series()
    {
        Assert.Equal([2.0, 2.0, 2.0], Curves.Smooth([2, 2, 2], 0.9));
        Assert.Equal([0.0, 0.75, 0.9375], Curves.Smooth([0, 1, 1], 0.25));
        Assert.Equal([3.0, 1.0], Curves.Smooth([3, 1], 0));
    }

    [Fact]
    public void Grid_image_url_carries_the_chosen_view()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        Fake.Snapshots.Add(FakeDashboardService.Snapshot(0));
        Fake.Snapshots.Add(FakeDashboardService.Snapshot(50));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.Equal("runs/run-a/snapshots/50.png", page.Find("[data-testid=snapshot-grid]").GetAttribute("src")));
        var select = page.FindComponents<MudBlazor.MudSelect<GridView>>().Single();
        select.InvokeAsync(() => select.Instance.ValueChanged.InvokeAsync(GridView.Preprocessed));
        page.WaitForAssertion(() => Assert.Equal("runs/run-a/snapshots/50.png?view=preprocessed", page.Find("[data-testid=snapshot-grid]").GetAttribute("src")));
        select.InvokeAsync(() => select.Instance.ValueChanged.InvokeAsync(GridView.Change));
        page.WaitForAssertion(() => Assert.Equal("runs/run-a/snapshots/50.png?view=change", page.Find("[data-testid=snapshot-grid]").GetAttribute("src")));
    }

    [Fact]
    public async Task Evaluates_under_another_kernel_at_the_shown_step()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        Fake.Snapshots.Add(FakeDashboardService.Snapshot(50));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.Contains("Evaluate at step 50", page.Find("[data-testid=evaluate]").TextContent));
        var panel = page.FindComponent<EvaluatePanel>();
        await panel.InvokeAsync(() => panel.Instance.Set(KernelKind.Nngp, 3));
        page.Find("[data-testid=evaluate]").Click();
        page.WaitForAssertion(() => Assert.Single(page.FindAll("[data-testid=evaluate-result]")));
        var (run, kernel, step) = Assert.Single(Fake.Evaluations);
        Assert.Equal(("run-a", KernelKind.Nngp, 3, 50L), (run, kernel.Kind, kernel.Depth, step));
        var cells = page.FindAll("[data-testid=evaluate-result] td").Select(c => c.TextContent).ToArray();
        Assert.Equal(["NNGP FC-3", "50", "75.0 %", "1.25e-1"], cells);

        Fake.EvaluateFailure = new DistillerException(StatusCode.InvalidArgument, "invalid kernel",
            fieldViolations: new Dictionary<string, string> { ["kernel.depth"] = "depth must be at most 16" });
        page.Find("[data-testid=evaluate]").Click();
        page.WaitForAssertion(() => Assert.Contains("depth must be at most 16", page.Markup));
        Assert.Single(page.FindAll("[data-testid=evaluate-result]"));  // the earlier result stays
    }

    [Fact]
    public async Task Trains_finite_networks_at_the_shown_step_and_shows_each_networks_accuracy()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        Fake.Snapshots.Add(FakeDashboardService.Snapshot(50));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.Contains("Train on step 50", page.Find("[data-testid=transfer]").TextContent));
        var panel = page.FindComponent<TransferPanel>();
        await panel.InvokeAsync(() => panel.Instance.Set(TransferProtocolKind.Standard, 2, 64, 30, null));
        page.Find("[data-testid=transfer]").Click();
        page.WaitForAssertion(() => Assert.Contains("Training networks", page.Find("[data-testid=transfer]").TextContent));
        var (run, spec, step) = Assert.Single(Fake.Transfers);
        Assert.Equal(("run-a", 50L), (run, step));
        Assert.Equal(new TransferSpecification { Protocol = TransferProtocolKind.Standard, Seeds = 2, Width = 64, Epochs = 30 }, spec);

        Fake.TransferAnswer!.SetResult(new TransferEvaluation(0.4, 0.1, 50, [new(0, 0.3, 30, 30), new(1, 0.5, 30, 30)],
            spec with { LearningRate = 0.01, MaxTest = 200 }, 200, TimeSpan.FromSeconds(75)));
        page.WaitForAssertion(() => Assert.Single(page.FindAll("[data-testid=transfer-result]")));
        var cells = page.FindAll("[data-testid=transfer-result] td").Select(c => c.TextContent).ToArray();
        Assert.Equal(["Standard (width 64)", "50", "1m 15s"], new[] { cells[0], cells[1], cells[3] });
        Assert.Matches(@"^\s*40\.0 % ± 10\.0 %\s*on 200 test images; each network: 30\.0 %, 50\.0 %\s*$", cells[2]);
        Assert.Contains("Train on step 50", page.Find("[data-testid=transfer]").TextContent);

        Fake.TransferFailure = new DistillerException(StatusCode.InvalidArgument, "invalid transfer",
            fieldViolations: new Dictionary<string, string> { ["transfer.width"] = "must be 1 to 1024, got 4096" });
        page.Find("[data-testid=transfer]").Click();
        page.WaitForAssertion(() => Assert.Contains("must be 1 to 1024, got 4096", page.Markup));
        Assert.Empty(page.FindAll("[data-testid=transfer-error]"));  // shown at its field
        Assert.Single(page.FindAll("[data-testid=transfer-result]"));  // the earlier result stays
    }

    [Fact]
    public async Task Unsubscribes_when_closed()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        Assert.Equal(1, Fake.WatcherCount);
        await DisposeComponentsAsync();
        Assert.Equal(0, Fake.WatcherCount);
    }

    [Fact]
    public void Missing_run_says_so()
    {
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-x"));
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=run-not-found]")));
    }

    [Fact]
    public void Unreachable_distiller_shows_a_message()
    {
        Fake.Failure = FakeDashboardService.Unavailable();
        var page = Render<RunDetail>(p => p.Add(x => x.Id, "run-a"));
        page.WaitForAssertion(() => Assert.Contains("reconnects by itself", page.Find("[data-testid=run-error]").TextContent));
    }
}

public sealed class KernelsPageTests : DashboardTestBase
{
    [Fact]
    public void Loading_then_services_with_health_and_load()
    {
        Fake.Hold = new TaskCompletionSource();
        Fake.KernelServices.Add(new KernelServiceInfo("http://k1", true, null, "1.0", "cpu", 4, 2, 8,
            TimeSpan.FromMilliseconds(12.5), TimeSpan.FromMilliseconds(1.5), ["runs/run-a"], DateTimeOffset.UnixEpoch));
        Fake.KernelServices.Add(new KernelServiceInfo("http://k2", false, "connection refused", "", "", 0, 0, 0, null, null, [], null));
        var page = Render<Kernels>();
        Assert.NotNull(page.Find("[data-testid=kernels-loading]"));
        Fake.Hold.SetResult();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=kernels-table]")));
        Assert.Contains("healthy", page.Markup);
        Assert.Contains("unreachable", page.Markup);
        Assert.Contains("12.5 ms", page.Markup);
        Assert.Contains("run-a", page.Markup);
    }

    [Fact]
    public void Empty_and_error()
    {
        var page = Render<Kernels>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=kernels-empty]")));
        Fake.Failure = FakeDashboardService.Unavailable();
        var again = Render<Kernels>();
        again.WaitForAssertion(() => Assert.NotNull(again.Find("[data-testid=kernels-error]")));
    }
}

public sealed class ComparePageTests : DashboardTestBase
{
    [Fact]
    public void Shows_each_run_and_the_settings_that_differ()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        Fake.Runs.Add(FakeDashboardService.Run("run-b", RunStatus.Succeeded, 200, 200));
        Fake.Snapshots.Add(FakeDashboardService.Snapshot(50));
        Services.GetRequiredService<NavigationManager>().NavigateTo("compare?ids=run-a,run-b");
        var page = Render<Compare>();
        page.WaitForAssertion(() => Assert.NotNull(page.Find("[data-testid=spec-diff]")));
        Assert.Contains("Steps", page.Find("[data-testid=spec-diff]").TextContent);
        Assert.Equal(2, page.FindAll("[data-testid=snapshot-grid]").Count);
        Assert.Equal(2, Fake.WatcherCount);
    }

    [Fact]
    public void Without_runs_offers_a_picker()
    {
        Fake.Runs.Add(FakeDashboardService.Run("run-a"));
        var page = Render<Compare>();
        page.WaitForAssertion(() => Assert.Contains("Pick two or more runs", page.Markup));
    }
}
