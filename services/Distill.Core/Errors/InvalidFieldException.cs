namespace Distill.Core.Errors;

/// <summary>
/// A request field whose value is wrong. Services answer INVALID_ARGUMENT with a field
/// violation naming <see cref="Field"/>; it derives from <see cref="ArgumentException"/>
/// so that engine callers can keep catching argument errors.
/// </summary>
public sealed class InvalidFieldException(string field, string description)
    : ArgumentException($"{field}: {description}", field)
{
    /// <summary>The field's path as the caller named it, e.g. spec.kernel.depth.</summary>
    public string Field { get; } = field;

    /// <summary>What is wrong, without the field name.</summary>
    public string Description { get; } = description;

    /// <summary>The message without ArgumentException's "(Parameter ...)" suffix.</summary>
    public override string Message => $"{Field}: {Description}";

    /// <summary>
    /// The same violation seen from a caller that nests the field: a kernel spec's
    /// "kernel.depth" becomes "spec.kernel.depth" when the spec arrived as "spec.kernel".
    /// </summary>
    public InvalidFieldException Within(string prefix, string ownRoot)
    {
        var field = Field == ownRoot ? prefix
            : Field.StartsWith(ownRoot + ".", StringComparison.Ordinal) ? prefix + Field[ownRoot.Length..]
            : $"{prefix}.{Field}";
        return new InvalidFieldException(field, Description);
    }
}
