using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Distill.Client;
using Distill.Dashboard.Components;
using Distill.Dashboard.Services;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using MudBlazor.Services;

namespace Distill.Dashboard;

/// <summary>The dashboard's services and endpoints, so that Program.cs stays two lines.</summary>
public static class DashboardExtensions
{
    public const string SignInPath = "/signin";

    public static WebApplicationBuilder AddDashboard(this WebApplicationBuilder builder)
    {
        // Serve the packages' assets (MudBlazor, Plotly) from the build output too, not only when published.
        builder.WebHost.UseStaticWebAssets();
        var services = builder.Services;
        services.Configure<DashboardOptions>(builder.Configuration.GetSection("Dashboard"));
        var options = builder.Configuration.GetSection("Dashboard").Get<DashboardOptions>() ?? new DashboardOptions();

        services.AddRazorComponents().AddInteractiveServerComponents();
        // Bottom right: messages must not cover the page's own buttons at the top.
        services.AddMudServices(o => o.SnackbarConfiguration.PositionClass = MudBlazor.Defaults.Classes.Position.BottomRight);
        services.AddMemoryCache(o => o.SizeLimit = 256L << 20);

        services.AddSingleton(_ => GrpcChannel.ForAddress(options.Distiller, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 256 << 20,
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, KeepAlivePingDelay = TimeSpan.FromSeconds(30) },
        }));
        services.AddSingleton(sp => new DistillerClient(sp.GetRequiredService<GrpcChannel>(), options.DistillerApiKey));
        services.AddSingleton(sp =>
        {
            var client = sp.GetRequiredService<DistillerClient>();
            return new RunWatcher((id, after, ct) => client.WatchRunAsync(id, after, follow: true, ct), sp.GetRequiredService<ILogger<RunWatcher>>());
        });
        services.AddSingleton<IDashboardService, DistillerDashboardService>();

        services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie(o =>
        {
            o.LoginPath = SignInPath;
            o.Cookie.Name = "distill-dashboard";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.ExpireTimeSpan = TimeSpan.FromDays(7);
            o.SlidingExpiration = true;
        });
        services.AddAuthorization(o =>
        {
            // Without an access key the dashboard is open; with one every page needs the cookie.
            if (!string.IsNullOrEmpty(options.AccessKey))
                o.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
        });
        return builder;
    }

    public static WebApplication MapDashboard(this WebApplication app)
    {
        if (!app.Environment.IsDevelopment())
            app.UseExceptionHandler("/error", createScopeForErrors: true);
        app.UseStatusCodePagesWithReExecute("/not-found");
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();

        app.MapStaticAssets().AllowAnonymous();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();

        app.MapGet("/runs/{id}/snapshots/{step:long}.png", SnapshotPng);
        app.MapGet("/runs/{id}/export/{format}", Export);
        app.MapPost("/account/signin", SignIn).AllowAnonymous();
        app.MapGet("/signout", async (HttpContext context) =>
        {
            await context.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Results.Redirect(SignInPath);
        });
        return app;
    }

    /// <summary>A snapshot's images as a class x image grid; a snapshot never changes, so it is cached here and in browsers.</summary>
    private static async Task<IResult> SnapshotPng(string id, long step, IDashboardService service, IMemoryCache cache, HttpContext context, CancellationToken cancellationToken)
    {
        var view = PngGrid.ParseView(context.Request.Query["view"]);
        var key = $"png:{RunNames.ToId(id)}:{step}:{view}";
        if (!cache.TryGetValue(key, out byte[]? png) || png is null)
        {
            try
            {
                var snapshot = await service.GetSnapshotAsync(id, step, cancellationToken);
                SnapshotInfo? start = null;
                if (view == GridView.Change)
                {
                    // The change since the start: against the run's first snapshot (step 0 when it has one).
                    var all = await service.ListSnapshotsAsync(id, cancellationToken);
                    var first = all.Count == 0 ? step : all.Min(s => s.Step);
                    start = first == step ? snapshot : await service.GetSnapshotAsync(id, first, cancellationToken);
                }
                try
                {
                    png = PngGrid.Render(snapshot, view, start);
                }
                catch (ArgumentException)
                {
                    return Results.NotFound();
                }
            }
            catch (DistillerException e) when (e.StatusCode == Grpc.Core.StatusCode.NotFound)
            {
                return Results.NotFound();
            }
            catch (DistillerException)
            {
                return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
            }
            cache.Set(key, png, new MemoryCacheEntryOptions { Size = png.Length, SlidingExpiration = TimeSpan.FromHours(1) });
        }
        context.Response.Headers.CacheControl = "private, max-age=31536000, immutable";
        return Results.Bytes(png, "image/png");
    }

    /// <summary>Streams ExportRun to the browser as a download.</summary>
    private static async Task Export(string id, string format, long? step, IDashboardService service, DistillerClient client, HttpContext context, CancellationToken cancellationToken)
    {
        ExportFormat? parsed = format.ToLowerInvariant() switch
        {
            "safetensors" => ExportFormat.Safetensors,
            "npz" => ExportFormat.Npz,
            "png" => ExportFormat.PngGrid,
            _ => null,
        };
        if (parsed is not { } exportFormat)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        var runId = RunNames.ToId(id);
        var extension = exportFormat == ExportFormat.PngGrid ? "png" : format.ToLowerInvariant();
        var fileName = step is { } s ? $"{runId}-step{s}.{extension}" : $"{runId}.{extension}";
        context.Response.ContentType = exportFormat == ExportFormat.PngGrid ? "image/png" : "application/octet-stream";
        context.Response.Headers.ContentDisposition = $"attachment; filename=\"{fileName}\"";
        try
        {
            await client.ExportRunAsync(runId, exportFormat, step, context.Response.Body, cancellationToken);
        }
        catch (DistillerException e) when (!context.Response.HasStarted)
        {
            context.Response.Headers.ContentDisposition = default;
            context.Response.ContentType = "text/plain";
            context.Response.StatusCode = e.StatusCode switch
            {
                Grpc.Core.StatusCode.NotFound => StatusCodes.Status404NotFound,
                Grpc.Core.StatusCode.FailedPrecondition => StatusCodes.Status409Conflict,
                _ => StatusCodes.Status503ServiceUnavailable,
            };
            await context.Response.WriteAsync($"Export failed: {e.Detail}", cancellationToken);
        }
    }

    private static async Task<IResult> SignIn(HttpContext context, IOptions<DashboardOptions> options, IAntiforgery antiforgery)
    {
        if (!await antiforgery.IsRequestValidAsync(context)) return Results.BadRequest();
        var form = await context.Request.ReadFormAsync();
        var expected = options.Value.AccessKey;
        var given = form["key"].ToString();
        var returnUrl = form["returnUrl"].ToString();
        if (string.IsNullOrEmpty(returnUrl) || !returnUrl.StartsWith('/') || returnUrl.StartsWith("//", StringComparison.Ordinal)) returnUrl = "/";
        if (string.IsNullOrEmpty(expected) ||
            !CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(given)), SHA256.HashData(Encoding.UTF8.GetBytes(expected))))
            return Results.Redirect($"{SignInPath}?failed=1&returnUrl={Uri.EscapeDataString(returnUrl)}");
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "dashboard")], CookieAuthenticationDefaults.AuthenticationScheme);
        await context.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme, new ClaimsPrincipal(identity));
        return Results.Redirect(returnUrl);
    }
}
