using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using KernelClient = Distill.Protos.Kernel.V1.KernelService.KernelServiceClient;
using DistillerClient = Distill.Protos.Distiller.V1.DistillerService.DistillerServiceClient;

namespace Distill.Fuzz.Grpc;

/// <summary>An answer outside the documented ones: the method, why, and the request that got it.</summary>
public sealed record Finding(string Method, string Problem, string Request);

/// <param name="Crashes">Times a server stopped answering its health call.</param>
/// <param name="Codes">Answers by "Service.Method STATUS".</param>
public sealed record FuzzReport(int Requests, int Crashes, IReadOnlyList<Finding> Undocumented, IReadOnlyDictionary<string, int> Codes);

/// <summary>
/// Sends mutated requests of every RPC of both services, one at a time, checks each answer
/// (<see cref="AnswerCheck"/>) and, after anything undocumented, that both servers still
/// answer. Leaves nothing behind: runs it started are cancelled and deleted, datasets it
/// created are dropped, so the servers' memory can be compared with before. Given the
/// servers' own folders, also checks that no answer names them (<see cref="AnswerCheck.Leak"/>).
/// </summary>
public sealed class GrpcFuzzer(CallInvoker kernel, CallInvoker distiller, int seed, TextWriter? log = null, IReadOnlyList<string>? serverPaths = null)
{
    private static readonly MethodDescriptor[] Methods =
        [.. Protos.Kernel.V1.KernelService.Descriptor.Methods, .. Protos.Distiller.V1.DistillerService.Descriptor.Methods];

    private readonly Random _random = new(seed);
    private readonly HashSet<string> _createdRuns = [];
    private readonly HashSet<string> _createdDatasets = [];

    /// <summary>Fuzzes until <paramref name="requests"/> are sent or <paramref name="until"/> has passed, whichever is first.</summary>
    public async Task<FuzzReport> RunAsync(ValidRequests valid, int requests, DateTime until)
    {
        var mutator = new MessageMutator(_random, [valid.Run, valid.Dataset]);
        var findings = new List<Finding>();
        var codes = new Dictionary<string, int>();
        int sent = 0, crashes = 0;
        for (; sent < requests && DateTime.UtcNow < until; sent++)
        {
            var method = Methods[_random.Next(Methods.Length)];
            var requestsOfCall = valid.For(method.FullName);
            // One in ten valid as is: the paths past validation must hold under cancellation too.
            var mutated = _random.Next(10) == 0 ? requestsOfCall.ToList()
                : method.IsClientStreaming ? mutator.MutateStream(requestsOfCall) : [mutator.Mutate(requestsOfCall[0])];
            var shape = _random.Next(10) switch { 0 => CallShape.Cancelled, 1 => CallShape.TinyDeadline, 2 => CallShape.CutShort, _ => CallShape.Complete };
            string code;
            try
            {
                await DynamicCall.InvokeAsync(method.Service.Name == "KernelService" ? kernel : distiller, method, mutated, shape, _random);
                code = "OK";
            }
            catch (RpcException error)
            {
                code = error.StatusCode.ToString();
                if ((AnswerCheck.Undocumented(error, cutShortByClient: shape != CallShape.Complete) ?? AnswerCheck.Leak(error, serverPaths ?? [])) is { } problem)
                {
                    var finding = new Finding(method.FullName, problem, Describe(mutated));
                    findings.Add(finding);
                    log?.WriteLine($"undocumented {finding.Method}: {finding.Problem}\n  request: {finding.Request}");
                    if (!await AliveAsync()) { crashes++; break; }
                }
            }
            catch (OperationCanceledException) when (shape != CallShape.Complete)
            {
                code = "Cancelled";
            }
            var key = $"{method.Service.Name}.{method.Name} {code}";
            codes[key] = codes.GetValueOrDefault(key) + 1;
            await AfterAsync(method, valid);
        }
        await CleanUpAsync(valid);
        if (crashes == 0 && !await AliveAsync()) crashes++;
        return new FuzzReport(sent, crashes, findings, codes);
    }

    /// <summary>Keeps the servers as they were: what a call started or created is stopped or noted for removal.</summary>
    private async Task AfterAsync(MethodDescriptor method, ValidRequests valid)
    {
        var kernelClient = new KernelClient(kernel);
        var distillerClient = new DistillerClient(distiller);
        switch (method.Name)
        {
            case "StartRun" or "ResumeRun":
                // A fuzzed spec may ask for two billion steps: whatever started is cancelled at once.
                var runs = await distillerClient.ListRunsAsync(new ListRunsRequest { PageSize = 1000, States = { RunState.Queued, RunState.Running, RunState.Paused } });
                foreach (var run in runs.Runs)
                {
                    await Quietly(() => distillerClient.CancelRunAsync(new CancelRunRequest { Name = run.Name }).ResponseAsync);
                    if (run.Name != valid.Run) _createdRuns.Add(run.Name);
                }
                break;
            case "UploadDataset" or "RegisterDataset" or "DropDataset":
                var datasets = await kernelClient.ListDatasetsAsync(new Protos.Kernel.V1.ListDatasetsRequest { PageSize = 1000 });
                if (!datasets.Datasets.Any(d => d.Name == valid.Dataset))
                {
                    await valid.ReplaceDatasetAsync(kernel);
                    await valid.EnsurePoolAsync(kernel);
                }
                // Dropped at once, so that memory does not build up over the run.
                foreach (var dataset in datasets.Datasets.Where(d => d.Name != valid.Dataset))
                    await Quietly(() => kernelClient.DropDatasetAsync(new DropDatasetRequest { Name = dataset.Name }).ResponseAsync);
                break;
            case "RegisterFeaturePool" or "DropFeaturePool":
                // Registering the valid pool again finds it when it is still held.
                await valid.EnsurePoolAsync(kernel);
                break;
        }
    }

    private async Task CleanUpAsync(ValidRequests valid)
    {
        var client = new DistillerClient(distiller);
        foreach (var name in _createdRuns)
        {
            // Cancelling may take a step to land; a run is deleted once it has ended.
            for (int attempt = 0; attempt < 50; attempt++)
            {
                try
                {
                    await client.DeleteRunAsync(new DeleteRunRequest { Name = name });
                    break;
                }
                catch (RpcException error) when (error.StatusCode == StatusCode.FailedPrecondition)
                {
                    await Quietly(() => client.CancelRunAsync(new CancelRunRequest { Name = name }).ResponseAsync);
                    await Task.Delay(100);
                }
                catch (RpcException error) when (error.StatusCode == StatusCode.NotFound)
                {
                    break;
                }
            }
        }
        await Quietly(() => client.CancelRunAsync(new CancelRunRequest { Name = valid.Run }).ResponseAsync);
    }

    /// <summary>Both servers answer a plain call within ten seconds.</summary>
    public async Task<bool> AliveAsync()
    {
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            await new KernelClient(kernel).GetServerInfoAsync(new GetServerInfoRequest(), deadline: deadline);
            await new DistillerClient(distiller).ListKernelServicesAsync(new ListKernelServicesRequest(), deadline: deadline);
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    private static async Task Quietly(Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (RpcException)
        {
            // Already ended or gone: nothing left to undo.
        }
    }

    /// <summary>The request as JSON, cut to a length a report can show.</summary>
    private static string Describe(IReadOnlyList<IMessage> requests)
    {
        var json = string.Join("; ", requests.Select(r => JsonFormatter.ToDiagnosticString(r)));
        return json.Length <= 600 ? json : json[..600] + "...";
    }
}
