using Distill.Dashboard;

// The content root is the build output, so that appsettings.json and the static assets are
// found whatever folder the dashboard is started from.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddDashboard();
var app = builder.Build();
app.MapDashboard();
app.Run();
