using Distill.DistillerService.Extensions;

var app = DistillerServiceHost.Build(args);
app.Run();
