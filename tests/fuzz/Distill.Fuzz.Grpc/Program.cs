using System.Globalization;
using Distill.DistillerService.Tests;
using Distill.Fuzz.Grpc;
using Grpc.Net.Client;

// Distill.Fuzz.Grpc write-data ROOT
//     writes the tiny IDX dataset (ROOT/tiny) the services' data root needs for runs
// Distill.Fuzz.Grpc --kernel URL --distiller URL [--requests N] [--seconds S] [--seed N] [--dataset tiny] [--pids P,P]
//     fuzzes both services; prints each undocumented answer as it comes, the answers by
//     method and status, then
//     result requests= crashes= undocumented= memory_growth_mb= (the resident memory of
//     --pids after the fuzzing, less after a warm-up of a tenth as many requests)
if (args is ["write-data", var root])
{
    TinyDataset.Write(root);
    return 0;
}

var options = new Dictionary<string, string>();
for (int i = 0; i + 1 < args.Length; i += 2) options[args[i].TrimStart('-')] = args[i + 1];
if (!options.TryGetValue("kernel", out var kernelAddress) || !options.TryGetValue("distiller", out var distillerAddress))
{
    Console.Error.WriteLine("usage: Distill.Fuzz.Grpc --kernel URL --distiller URL [--requests N] [--seconds S] [--seed N] [--dataset tiny] [--pids P,P] | write-data ROOT");
    return 2;
}
int requests = int.Parse(options.GetValueOrDefault("requests", "1000"), CultureInfo.InvariantCulture);
double seconds = double.Parse(options.GetValueOrDefault("seconds", "3600"), CultureInfo.InvariantCulture);
int seed = int.Parse(options.GetValueOrDefault("seed", "1"), CultureInfo.InvariantCulture);
int[] pids = options.TryGetValue("pids", out var list) ? list.Split(',').Select(int.Parse).ToArray() : [];

var channelOptions = new GrpcChannelOptions { MaxReceiveMessageSize = 256 << 20, MaxSendMessageSize = 256 << 20 };
using var kernel = GrpcChannel.ForAddress(kernelAddress, channelOptions);
using var distiller = GrpcChannel.ForAddress(distillerAddress, channelOptions);
var valid = await ValidRequests.CreateAsync(kernel.CreateCallInvoker(), distiller.CreateCallInvoker(), options.GetValueOrDefault("dataset", TinyDataset.Name));
// A warm-up tenth first: the servers' array pools and caches fill with the first large
// messages and stay full; growth measured after it is what the fuzzing leaves behind.
long start = ProcessMemory.ResidentBytes(pids);
var warmUp = await new GrpcFuzzer(kernel.CreateCallInvoker(), distiller.CreateCallInvoker(), seed + 1, Console.Out)
    .RunAsync(valid, Math.Max(1, requests / 10), DateTime.UtcNow.AddSeconds(seconds / 10));
long before = ProcessMemory.ResidentBytes(pids);
var report = await new GrpcFuzzer(kernel.CreateCallInvoker(), distiller.CreateCallInvoker(), seed, Console.Out)
    .RunAsync(valid, requests, DateTime.UtcNow.AddSeconds(seconds));
// The servers' collectors run on their own schedule: a short pause before the second reading.
await Task.Delay(TimeSpan.FromSeconds(5));
long after = ProcessMemory.ResidentBytes(pids);

foreach (var (call, count) in report.Codes.OrderBy(kv => kv.Key, StringComparer.Ordinal)) Console.WriteLine($"  {call}: {count}");
Console.WriteLine(FormattableString.Invariant(
    $"result requests={report.Requests} crashes={report.Crashes + warmUp.Crashes} undocumented={report.Undocumented.Count + warmUp.Undocumented.Count} memory_growth_mb={(after - before) / 1048576.0:F1} warm_up_requests={warmUp.Requests} warm_up_memory_growth_mb={(before - start) / 1048576.0:F1} seed={seed}"));
return report.Crashes + warmUp.Crashes == 0 && report.Undocumented.Count + warmUp.Undocumented.Count == 0 ? 0 : 1;
