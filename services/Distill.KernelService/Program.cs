using Distill.KernelService.Extensions;
using Distill.ServiceDefaults;

if (HealthProbe.RunIfAsked(args, defaultPort: 5051) is { } probe) return probe;
var app = KernelServiceHost.Build(args);
app.Run();
return 0;
