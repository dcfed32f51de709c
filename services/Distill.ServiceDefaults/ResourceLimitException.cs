namespace Distill.ServiceDefaults;

/// <summary>A configured limit was exceeded; the client gets RESOURCE_EXHAUSTED with this message.</summary>
public sealed class ResourceLimitException(string message) : Exception(message);
