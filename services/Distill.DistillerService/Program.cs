using Distill.DistillerService.Extensions;
using Distill.ServiceDefaults;

if (HealthProbe.RunIfAsked(args, defaultPort: 5052) is { } probe) return probe;
var app = DistillerServiceHost.Build(args);
app.Run();
return 0;
