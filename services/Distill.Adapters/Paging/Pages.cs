using System.Globalization;
using System.Text;
using Distill.Core.Errors;

namespace Distill.Adapters.Paging;

/// <summary>One page of a list and the token of the next, as List methods return them.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string NextPageToken, int TotalSize);

/// <summary>
/// Offset pagination for List methods. A token names the next offset and the query it
/// belongs to, so a token reused with another filter or order is refused rather than
/// silently skipping rows.
/// </summary>
public static class Pages
{
    public static Page<T> Take<T>(IReadOnlyList<T> ordered, int pageSize, string pageToken, string query,
        int defaultSize = 50, int maxSize = 1000)
    {
        if (pageSize < 0) throw new InvalidFieldException("page_size", $"must not be negative, got {pageSize}");
        var size = pageSize == 0 ? defaultSize : Math.Min(pageSize, maxSize);
        var offset = Offset(pageToken, query);
        var items = ordered.Skip(offset).Take(size).ToArray();
        var next = offset + items.Length < ordered.Count ? Token(offset + items.Length, query) : "";
        return new Page<T>(items, next, ordered.Count);
    }

    private static int Offset(string token, string query)
    {
        if (string.IsNullOrEmpty(token)) return 0;
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(token));
            var separator = text.IndexOf(':');
            if (separator > 0 && text[(separator + 1)..] == Fingerprint(query)
                && int.TryParse(text[..separator], NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
                return offset;
        }
        catch (FormatException)
        {
        }
        throw new InvalidFieldException("page_token", "not a token of this list with these filters; start again without one");
    }

    private static string Token(int offset, string query) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{offset.ToString(CultureInfo.InvariantCulture)}:{Fingerprint(query)}"));

    private static string Fingerprint(string query) =>
        Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(query)), 0, 8);
}
