using System.Collections.Concurrent;
using Distill.Adapters.Clients;
using Distill.Core.Distillation;
using Distill.Core.Errors;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Kernels;
using Distill.Protos.Distiller.V1;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Distiller:MaxConcurrentRuns worker loops that take runs from the <see cref="RunQueue"/>
/// and compute them. At start-up, runs left QUEUED, RUNNING or PAUSED by the previous
/// process are queued again and continue from their latest checkpoint. Stopping cancels
/// the runs and waits for them: each writes a checkpoint and stays to be picked up at the
/// next start.
/// </summary>
public sealed class RunWorkers(RunLifecycle lifecycle, RunStore store, RunQueue queue, RunExecutor executor,
    IOptions<DistillerOptions> options, ILogger<RunWorkers> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _active = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        foreach (var run in store.List())
        {
            var id = RunNames.Id(run.Name);
            if (run.State is RunState.Running or RunState.Paused)
                lifecycle.TryMove(id, RunState.Queued, $"picked up again at step {run.Step} after a restart");
            if (lifecycle.Find(id)?.State == RunState.Queued)
            {
                logger.LogInformation("Queuing run {Id} at step {Step}", id, run.Step);
                queue.Enqueue(id);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, options.Value.MaxConcurrentRuns)).Select(_ => WorkAsync(stoppingToken)));
    }

    /// <summary>Cancels a computing run (under the run's lock, from <see cref="RunOperations"/>); false when none computes.</summary>
    internal bool TryCancel(string id)
    {
        if (!_active.TryGetValue(id, out var cancellation)) return false;
        // Callbacks run elsewhere: this thread holds the run's lock.
        _ = cancellation.CancelAsync();
        return true;
    }

    private async Task WorkAsync(CancellationToken stopping)
    {
        try
        {
            await foreach (var id in queue.Reader.ReadAllAsync(stopping))
                await RunAsync(id, stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
    }

    private async Task RunAsync(string id, CancellationToken stopping)
    {
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        bool begun;
        try
        {
            // QUEUED -> RUNNING and the token registered in one step: a cancel sees either.
            begun = lifecycle.Locked(id, () =>
            {
                if (lifecycle.TryMove(id, RunState.Running, "loading the dataset", from: [RunState.Queued]) is null) return false;
                _active[id] = cancellation;
                return true;
            });
        }
        catch (ResourceNotFoundException)
        {
            return;  // deleted while queued
        }
        if (!begun) return;  // cancelled while queued, or already taken by another worker
        try
        {
            var message = await executor.ExecuteAsync(id, cancellation.Token);
            End(id, RunState.Succeeded, message);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Shutting down: the run continues at the next start from the checkpoint just written.
            lifecycle.Persist(id);
        }
        catch (OperationCanceledException)
        {
            End(id, RunState.Cancelled, "cancelled; resume continues from the latest checkpoint");
        }
        catch (DivergenceException e)
        {
            End(id, RunState.Failed, $"{e.Message}; the last good checkpoint is kept");
        }
        catch (Exception e) when (e is KernelServiceException or InvalidFieldException or ResourceNotFoundException or StateConflictException
                                       or LimitExceededException or Core.Data.DatasetFormatException)
        {
            End(id, RunState.Failed, e.Message);
        }
        catch (Exception e) when (DiskFull.Is(e))
        {
            logger.LogError(e, "Run {Id} stopped: disk full", id);
            End(id, RunState.Failed, DiskFull.RunMessage);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Run {Id} failed", id);
            End(id, RunState.Failed, e.Message);
        }
        finally
        {
            lifecycle.Locked(id, () => _active.TryRemove(new KeyValuePair<string, CancellationTokenSource>(id, cancellation)));
        }
    }

    private void End(string id, RunState state, string message)
    {
        try
        {
            if (lifecycle.TryMove(id, state, message) is null)
                logger.LogWarning("Run {Id} could not become {State} ({Message}): {Current}", id, state, message, lifecycle.Find(id)?.State);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or IOException)
        {
            // The database shares the full disk (or fails otherwise): the end is shown (live record, watchers) but not stored,
            // so the next start picks the run up again from its last good checkpoint.
            lifecycle.EndUnstored(id, state, message);
            logger.LogCritical(e, "Run {Id} became {State} ({Message}) but the database could not store it", id, state, message);
        }
    }
}
