using Bunit;
using Distill.Dashboard.Services;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;

namespace Distill.Dashboard.Tests;

/// <summary>bUnit with MudBlazor's services, loose JS interop (MudBlazor and Plotly call JS) and the fake service.</summary>
public abstract class DashboardTestBase : BunitContext, IAsyncLifetime
{
    private bool disposedAsync;

    public Task InitializeAsync() => Task.CompletedTask;

    // MudBlazor's services are only IAsyncDisposable: the container must be disposed asynchronously.
    async Task IAsyncLifetime.DisposeAsync()
    {
        await base.DisposeAsync();
        disposedAsync = true;
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposedAsync) base.Dispose(disposing);
    }

    protected FakeDashboardService Fake { get; } = new();

    // Waits end at the first passing check; the long ceiling only matters on a starved machine.
    static DashboardTestBase() => DefaultWaitTimeout = TimeSpan.FromSeconds(30);

    protected DashboardTestBase()
    {
        JSInterop.Mode = JSRuntimeMode.Loose;
        Services.AddMudServices(o => o.PopoverOptions.CheckForPopoverProvider = false);
        Services.AddSingleton<IDashboardService>(Fake);
        Render<MudPopoverProvider>();
        Render<MudDialogProvider>();
    }
}
