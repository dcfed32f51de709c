using Distill.Adapters.Paging;
using Distill.Core.Errors;
using Distill.DistillerService.Configuration;
using Distill.Protos.Distiller.V1;
using Google.Protobuf.WellKnownTypes;
using Method = Distill.Protos.Distiller.V1.Method;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Runs;

/// <summary>What clients do to runs: start, look up, list, cancel, resume, delete.</summary>
public sealed class RunOperations(RunLifecycle lifecycle, RunStore store, RunQueue queue, RunWorkers workers,
    IOptions<DistillerOptions> options, TimeProvider time)
{
    public const int MaxRequestIdLength = 128;
    private readonly Lock _starting = new();

    /// <summary>Queues a run; with a request id, the run an earlier call with that id created.</summary>
    public Run Start(RunSpec? spec, string requestId)
    {
        if (requestId.Length > MaxRequestIdLength)
            throw new InvalidFieldException("request_id", $"at most {MaxRequestIdLength} characters, got {requestId.Length}");
        var filled = RunSpecs.Normalize(spec, options.Value.DataRoot);
        lock (_starting)
        {
            if (requestId.Length > 0 && store.FindByRequestId(requestId) is { } existing)
            {
                if (!SameRequest(existing.Spec, filled))
                    throw new StateConflictException(ErrorReasons.RequestIdReused, "request_id",
                        $"request_id '{requestId}' already started {existing.Name} with another spec", alreadyExists: true);
                return lifecycle.Get(RunNames.Id(existing.Name));
            }
            var now = Timestamp.FromDateTimeOffset(time.GetUtcNow());
            var id = RunNames.NewId();
            var run = lifecycle.Create(new Run
            {
                Name = RunNames.Name(id), Spec = filled, State = RunState.Queued, StateMessage = "queued",
                CreateTime = now, UpdateTime = now, RequestId = requestId,
            });
            queue.Enqueue(id);
            return run;
        }
    }

    /// <summary>The same spec as the first call's; a resume may have changed the steps since, so they only may differ.</summary>
    private static bool SameRequest(RunSpec stored, RunSpec requested)
    {
        var a = stored.Clone();
        var b = requested.Clone();
        a.Steps = b.Steps = 0;
        return a.Equals(b);
    }

    public Run Get(string name) => lifecycle.Get(RunNames.Id(name));

    public Run Cancel(string name)
    {
        var id = RunNames.Id(name);
        return lifecycle.Locked(id, () =>
        {
            var run = lifecycle.Get(id);
            switch (run.State)
            {
                case RunState.Queued:
                    return lifecycle.Move(id, RunState.Cancelled, "cancelled before it started");
                case RunState.Running or RunState.Paused:
                    // The run stops at its next step, writes a checkpoint, and becomes CANCELLED.
                    return workers.TryCancel(id) ? run : lifecycle.Move(id, RunState.Cancelled, "cancelled");
                default:
                    throw RunLifecycle.Conflict(run, "it has already ended");
            }
        });
    }

    public Run Resume(string name, int? steps)
    {
        var id = RunNames.Id(name);
        return lifecycle.Locked(id, () =>
        {
            var run = lifecycle.Get(id);
            if (!RunLifecycle.IsTerminal(run.State)) throw RunLifecycle.Conflict(run, "only an ended run can be resumed");
            if (steps is { } total)
            {
                var changed = run.Spec.Clone();
                changed.Steps = total;
                try { RunSpecs.ToOptions(changed); }
                catch (InvalidFieldException e) when (e.Field == "spec.steps") { throw new InvalidFieldException("steps", e.Description); }
            }
            var resumed = lifecycle.Move(id, RunState.Queued, "resume queued", r => { if (steps is { } total) r.Spec.Steps = total; });
            queue.Enqueue(id);
            return resumed;
        });
    }

    public void Delete(string name)
    {
        var id = RunNames.Id(name);
        lifecycle.Delete(id, () =>
        {
            var folder = store.RunFolder(id);
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        });
    }

    public Page<Run> List(ListRunsRequest request)
    {
        var order = string.IsNullOrWhiteSpace(request.OrderBy) ? "create_time desc" : string.Join(' ', request.OrderBy.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Func<Run, Timestamp> key = order switch
        {
            "create_time desc" or "create_time" => r => r.CreateTime,
            "update_time desc" or "update_time" => r => r.UpdateTime,
            _ => throw new InvalidFieldException("order_by", $"'{request.OrderBy}' is not one of: create_time desc, create_time, update_time desc, update_time"),
        };
        var states = request.States.Where(s => s != RunState.Unspecified).Distinct().Order().ToArray();
        var methods = request.Methods.Where(m => m != Method.Unspecified).Distinct().Order().ToArray();
        var runs = store.List().Select(r => lifecycle.Find(RunNames.Id(r.Name)) ?? r)
            .Where(r => states.Length == 0 || states.Contains(r.State))
            .Where(r => request.Dataset.Length == 0 || r.Spec.Dataset == request.Dataset)
            .Where(r => methods.Length == 0 || methods.Contains(r.Spec.Method == Method.Unspecified ? Method.Kip : r.Spec.Method));
        var ordered = (order.EndsWith(" desc", StringComparison.Ordinal)
            ? runs.OrderByDescending(key).ThenByDescending(r => r.Name, StringComparer.Ordinal)
            : runs.OrderBy(key).ThenBy(r => r.Name, StringComparer.Ordinal)).ToList();
        var query = $"runs?states={string.Join(',', states)}&dataset={request.Dataset}&methods={string.Join(',', methods)}&order_by={order}";
        return Pages.Take(ordered, request.PageSize, request.PageToken, query);
    }
}
