using Distill.KernelService.Extensions;

var app = KernelServiceHost.Build(args);
app.Run();
