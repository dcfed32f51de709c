using System.Collections.Concurrent;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Runs;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Kernels;
using Distill.Protos.Distiller.V1;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Extensions.Options;
using CoreRunEvent = Distill.Core.Runs.RunEvent;
using RunEvent = Distill.Protos.Distiller.V1.RunEvent;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Owns the runs: queues them (at most Distiller:MaxConcurrentRuns compute at once), runs
/// each with the engine's run loop over kernel services, records every event, and on
/// start-up picks up whatever was queued or running when the process last stopped, from
/// its latest checkpoint.
/// </summary>
public sealed class RunSupervisor : BackgroundService
{
    private readonly RunStore _store;
    private readonly RunEventHub _hub;
    private readonly KernelServicePool _pool;
    private readonly DistillerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<RunSupervisor> _logger;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _active = new();
    private readonly ConcurrentDictionary<string, Lazy<Task<PreparedDataset>>> _datasets = new();
    private readonly Lock _runLock = new();
    private CancellationToken _stopping;

    public RunSupervisor(RunStore store, RunEventHub hub, KernelServicePool pool, IOptions<DistillerOptions> options,
        TimeProvider time, ILogger<RunSupervisor> logger)
    {
        _store = store;
        _hub = hub;
        _pool = pool;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _slots = new SemaphoreSlim(Math.Max(1, _options.MaxConcurrentRuns));
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        foreach (var run in _store.List().Where(r => r.State is RunState.Queued or RunState.Running or RunState.Paused))
        {
            _logger.LogInformation("Picking up run {Id} at step {Step}", run.Id, run.Step);
            Schedule(run.Id);
        }
        return Task.CompletedTask;
    }

    public Run Start(RunSpec spec)
    {
        RunSpecs.ToOptions(spec);
        RunSpecs.Preprocessing(spec);
        ResolveDataset(spec);
        var now = Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        var run = new Run
        {
            Id = "run-" + Guid.NewGuid().ToString("N")[..12], Spec = spec, State = RunState.Queued, TestAccuracy = -1, CheckpointStep = -1,
            Created = now, Updated = now, Message = "queued",
        };
        _store.Save(run);
        Record(run.Id, new RunEvent { State = new StateChanged { State = RunState.Queued, Message = "queued" } });
        Schedule(run.Id);
        return run;
    }

    public Run Cancel(string id)
    {
        var run = Require(id);
        if (run.State is RunState.Succeeded or RunState.Failed or RunState.Cancelled)
            throw new InvalidOperationException($"run_id: run {id} has already ended ({run.State})");
        if (_active.TryGetValue(id, out var cancellation))
        {
            cancellation.Cancel();
            return Require(id);
        }
        return SetState(id, RunState.Cancelled, "cancelled before it started");
    }

    public Run Resume(string id, int steps)
    {
        var run = Require(id);
        if (run.State is not (RunState.Cancelled or RunState.Failed or RunState.Succeeded))
            throw new InvalidOperationException($"run_id: run {id} is {run.State}; only ended runs can be resumed");
        if (steps < 0) throw new ArgumentException($"steps: must not be negative, got {steps}", "steps");
        lock (_runLock)
        {
            run = Require(id);
            if (steps > 0) run.Spec.Steps = steps;
            RunSpecs.ToOptions(run.Spec);
            _store.Save(run);
        }
        SetState(id, RunState.Queued, "resume queued");
        Schedule(id);
        return Require(id);
    }

    public void Delete(string id)
    {
        Require(id);
        if (_active.TryGetValue(id, out var cancellation))
            throw new InvalidOperationException($"run_id: run {id} is active; cancel it first");
        _store.Delete(id);
        var folder = _store.RunFolder(id);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    public Run Require(string id) =>
        string.IsNullOrEmpty(id) ? throw new ArgumentException("run_id: required", "run_id")
        : _store.Get(id) ?? throw new KeyNotFoundException($"run_id: no run '{id}'");

    /// <summary>The prepared dataset of a spec (loaded once per dataset and preprocessing, shared by runs).</summary>
    public Task<PreparedDataset> DatasetAsync(RunSpec spec)
    {
        var path = ResolveDataset(spec);
        var preprocessing = RunSpecs.Preprocessing(spec);
        var key = $"{path}|{spec.Format}|{preprocessing}";
        return _datasets.GetOrAdd(key, _ => new Lazy<Task<PreparedDataset>>(() => Task.Run(() =>
            PreparedDataset.Prepare(DatasetLoader.Load(path, string.IsNullOrEmpty(spec.Format) ? null : spec.Format), preprocessing)))).Value;
    }

    public RemoteKipBackend Backend(RunSpec spec, Core.Kernels.KernelSpec kernel, double regularization, long trainCount, string runId) =>
        new(_pool, new DatasetReference(spec.Dataset, spec.Format, RunSpecs.PreprocessingMessage(spec)), kernel, regularization, trainCount,
            available => SetState(runId, available ? RunState.Running : RunState.Paused,
                available ? "a kernel service is reachable again" : "no kernel service reachable; waiting for one to return"),
            TimeSpan.FromSeconds(_options.ProbeIntervalSeconds), _logger);

    private string ResolveDataset(RunSpec spec)
    {
        if (string.IsNullOrEmpty(_options.DataRoot))
            throw new InvalidOperationException("spec.dataset: the distiller has no Distiller:DataRoot configured");
        try { return DataRoot.Resolve(_options.DataRoot, spec.Dataset); }
        catch (ArgumentException) { throw new ArgumentException("spec.dataset: required (a folder under the data root)", "spec.dataset"); }
    }

    private void Schedule(string id) => _ = Task.Run(() => ExecuteRunAsync(id));

    private async Task ExecuteRunAsync(string id)
    {
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(_stopping);
        if (!_active.TryAdd(id, cancellation)) return;
        try
        {
            await _slots.WaitAsync(cancellation.Token);
            try
            {
                await RunAsync(id, cancellation.Token);
            }
            finally
            {
                _slots.Release();
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Shutting down: the run stays RUNNING/QUEUED and continues at the next start.
        }
        catch (OperationCanceledException)
        {
            SetState(id, RunState.Cancelled, "cancelled; resume continues from the latest checkpoint");
        }
        catch (DivergenceException e)
        {
            SetState(id, RunState.Failed, $"{e.Message}; the last good checkpoint is kept");
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Run {Id} failed", id);
            SetState(id, RunState.Failed, e.Message);
        }
        finally
        {
            _active.TryRemove(id, out _);
        }
    }

    private async Task RunAsync(string id, CancellationToken cancellation)
    {
        var run = Require(id);
        var options = RunSpecs.ToOptions(run.Spec);
        SetState(id, RunState.Running, "loading the dataset");
        var data = await DatasetAsync(run.Spec);
        var backend = Backend(run.Spec, options.Kernel, options.Regularization, data.TrainImages.shape[0], id);
        await backend.PrepareAsync(cancellation);
        var folder = _store.RunFolder(id);
        var summary = await LocalRun.ExecuteAsync(data, options, folder, resume: true, backend, e => OnEvent(id, e), cancellation);
        SetState(id, RunState.Succeeded, $"finished: test accuracy {summary.TestAccuracy:P2} after {summary.Steps} steps");
    }

    private void OnEvent(string id, CoreRunEvent e)
    {
        switch (e)
        {
            case RunStarted started:
                SetState(id, RunState.Running, started.Resumed ? $"resumed from step {started.FromStep}" : "started");
                break;
            case StepCompleted step:
                Update(id, r => { r.Step = step.Step; r.LastLoss = step.Loss; }, persist: step.Step % 10 == 0);
                Record(id, new RunEvent { Progress = new StepProgress { Step = step.Step, TotalSteps = step.TotalSteps, Loss = step.Loss, StepsPerSecond = step.StepsPerSecond } });
                break;
            case EvaluationCompleted evaluation:
                Update(id, r => r.TestAccuracy = evaluation.Result.Accuracy);
                Record(id, new RunEvent { Evaluation = new EvaluationDone { Step = evaluation.Step, TestAccuracy = evaluation.Result.Accuracy, TestMse = evaluation.Result.Mse } });
                break;
            case CheckpointWritten checkpoint:
                Update(id, r => { r.CheckpointStep = checkpoint.Step; r.Step = checkpoint.Step; });
                Record(id, new RunEvent { Checkpoint = new CheckpointDone { Step = checkpoint.Step } });
                break;
        }
    }

    private readonly ConcurrentDictionary<string, Run> _live = new();

    private void Update(string id, Action<Run> change, bool persist = true)
    {
        lock (_runLock)
        {
            var run = _live.TryGetValue(id, out var cached) ? cached : Require(id);
            change(run);
            _live[id] = run;
            if (persist) _store.Save(run);
        }
    }

    private Run SetState(string id, RunState state, string message)
    {
        Run snapshot;
        lock (_runLock)
        {
            var run = _live.TryGetValue(id, out var cached) ? cached : Require(id);
            if (run.State == state && run.Message == message) return run.Clone();
            run.State = state;
            run.Message = message;
            _store.Save(run);
            if (state is RunState.Succeeded or RunState.Failed or RunState.Cancelled) _live.TryRemove(id, out _);
            else _live[id] = run;
            snapshot = run.Clone();
        }
        Record(id, new RunEvent { State = new StateChanged { State = state, Message = message } });
        return snapshot;
    }

    private void Record(string id, RunEvent runEvent) => _hub.Publish(id, _store.Append(id, runEvent));

    public static bool IsTerminal(RunState state) => state is RunState.Succeeded or RunState.Failed or RunState.Cancelled;
}
