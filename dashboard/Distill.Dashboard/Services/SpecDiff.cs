using System.Text.Json;
using System.Text.Json.Serialization;
using Distill.Client;

namespace Distill.Dashboard.Services;

/// <summary>The spec fields on which several runs differ, as "field: value per run".</summary>
public static class SpecDiff
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    public static IReadOnlyDictionary<string, string> Flatten(RunSpecification spec)
    {
        var fields = new SortedDictionary<string, string>(StringComparer.Ordinal);
        Walk(JsonSerializer.SerializeToElement(spec, Json), "", fields);
        return fields;
    }

    /// <summary>Each differing field with every run's value, in the runs' order.</summary>
    public static IReadOnlyList<(string Field, IReadOnlyList<string> Values)> Differences(IReadOnlyList<RunSpecification> specs)
    {
        var flat = specs.Select(Flatten).ToArray();
        var names = flat.SelectMany(f => f.Keys).Distinct().Order(StringComparer.Ordinal);
        return names
            .Select(n => (Field: n, Values: (IReadOnlyList<string>)flat.Select(f => f.GetValueOrDefault(n, "–")).ToArray()))
            .Where(d => d.Values.Distinct().Count() > 1)
            .ToArray();
    }

    private static void Walk(JsonElement element, string prefix, IDictionary<string, string> fields)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in element.EnumerateObject())
                Walk(p.Value, prefix.Length == 0 ? p.Name : $"{prefix}.{p.Name}", fields);
            return;
        }
        fields[prefix] = element.ValueKind switch
        {
            JsonValueKind.Null => "default",
            JsonValueKind.String => element.GetString() ?? "",
            _ => element.GetRawText(),
        };
    }
}
