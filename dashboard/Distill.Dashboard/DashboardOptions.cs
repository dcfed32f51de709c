namespace Distill.Dashboard;

/// <summary>The "Dashboard" configuration section.</summary>
public sealed class DashboardOptions
{
    /// <summary>The distiller's address, e.g. http://127.0.0.1:5052.</summary>
    public string Distiller { get; set; } = "http://127.0.0.1:5052";

    /// <summary>The distiller's API key; it stays on this server and is never sent to browsers.</summary>
    public string? DistillerApiKey { get; set; }

    /// <summary>When set, browsers must sign in with this key before they see anything.</summary>
    public string? AccessKey { get; set; }
}
