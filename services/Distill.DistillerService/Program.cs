using Distill.DistillerService.Extensions;
using Distill.DistillerService.Runs;
using Distill.ServiceDefaults;

if (HealthProbe.RunIfAsked(args, defaultPort: 5052) is { } probe) return probe;
var app = DistillerServiceHost.Build(args);
try
{
    // Before serving: a corrupt or locked database stops the start here, naming its file.
    app.Services.GetRequiredService<RunStore>();
}
catch (RunStoreUnavailableException e)
{
    // Straight to stderr: the console logger writes from a queue that exiting would cut short.
    Console.Error.WriteLine($"distiller: not starting: {e.Message}");
    return 2;
}
app.Run();
return 0;
