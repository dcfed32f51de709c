using System.Collections;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Distill.Fuzz.Grpc;

/// <summary>
/// Mutates a valid request field by field, from its descriptor, so that every RPC is covered
/// by the same code and the mutations stay well-formed protobuf (the server's validation is
/// under test, not its parser): numbers at their edges, NaN and infinities, unknown enum
/// values, bad resource names, tensor bytes cut, padded or filled with NaN, repeated fields
/// emptied or grown huge, sub-messages dropped or emptied.
/// </summary>
public sealed class MessageMutator(Random random, IReadOnlyList<string> knownNames)
{
    /// <summary>Huge repeated fields stay under the servers' 64 MB message limit, so that the service itself answers.</summary>
    private const int HugeCount = 1 << 20;

    private static readonly long[] EdgeIntegers = [0, -1, 1, 2, 3, int.MaxValue, int.MinValue, (long)int.MaxValue + 1, long.MaxValue, long.MinValue, 1L << 40];
    private static readonly double[] EdgeDoubles = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0, -0.0, double.MaxValue, double.Epsilon, -1, 1e-300, 1e300];

    /// <summary>A mutated copy of <paramref name="message"/>: one to three mutations at random fields.</summary>
    public IMessage Mutate(IMessage message)
    {
        // A copy through the wire format: the valid request stays as it is for the next call.
        var copy = message.Descriptor.Parser.ParseFrom(message.ToByteString());
        int mutations = 1 + random.Next(3);
        for (int i = 0; i < mutations; i++)
        {
            var slots = Slots(copy).ToList();
            if (slots.Count == 0) break;
            var (owner, field) = slots[random.Next(slots.Count)];
            MutateField(owner, field);
        }
        return copy;
    }

    /// <summary>A client stream's messages, each mutated or not, and the stream cut, reordered or repeated.</summary>
    public List<IMessage> MutateStream(IReadOnlyList<IMessage> messages)
    {
        var stream = messages.Select(m => random.Next(3) == 0 ? Mutate(m) : m).ToList();
        switch (random.Next(5))
        {
            case 0: if (stream.Count > 0) stream.RemoveAt(0); break;          // no header first
            case 1: stream = stream.Take(random.Next(stream.Count + 1)).ToList(); break;
            case 2: if (stream.Count > 0) stream.Add(stream[random.Next(stream.Count)]); break;
            case 3: stream.Reverse(); break;
        }
        return stream;
    }

    /// <summary>Every field of the message and of its set sub-messages, set or not.</summary>
    private static IEnumerable<(IMessage Owner, FieldDescriptor Field)> Slots(IMessage message)
    {
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            if (field.IsMap) continue;
            yield return (message, field);
            if (field.FieldType != FieldType.Message) continue;
            var value = field.Accessor.GetValue(message);
            if (field.IsRepeated)
            {
                foreach (var item in (IList)value)
                    foreach (var slot in Slots((IMessage)item)) yield return slot;
            }
            else if (value is IMessage child)
            {
                foreach (var slot in Slots(child)) yield return slot;
            }
        }
    }

    private void MutateField(IMessage owner, FieldDescriptor field)
    {
        var accessor = field.Accessor;
        if (field.IsRepeated)
        {
            var list = (IList)accessor.GetValue(owner);
            switch (random.Next(4))
            {
                case 0: list.Clear(); break;
                case 1 when field.FieldType is FieldType.String or FieldType.Bytes:
                    // Many short names (a million long ones would pass any message limit).
                    for (int i = 0; i < HugeCount / 100; i++) list.Add(field.FieldType == FieldType.String ? "runs/x" : ByteString.Empty);
                    break;
                case 1 when field.FieldType != FieldType.Message:
                    // Huge: a million elements of one value.
                    var element = Scalar(field, list.Count > 0 ? list[0] : null);
                    for (int i = 0; i < HugeCount; i++) list.Add(element);
                    break;
                case 2 when list.Count > 0: list.Add(list[random.Next(list.Count)]); break;
                default:
                    if (list.Count > 0 && field.FieldType != FieldType.Message) list[random.Next(list.Count)] = Scalar(field, list[0]);
                    else if (field.FieldType == FieldType.Message) list.Add(field.MessageType.Parser.ParseFrom(ByteString.Empty));
                    break;
            }
            return;
        }
        if (field.FieldType == FieldType.Message)
        {
            // Dropped, or present but empty: both must be validated, neither dereferenced blindly.
            accessor.SetValue(owner, random.Next(2) == 0 ? null! : field.MessageType.Parser.ParseFrom(ByteString.Empty));
            return;
        }
        accessor.SetValue(owner, Scalar(field, accessor.GetValue(owner)));
    }

    private object Scalar(FieldDescriptor field, object? current) => field.FieldType switch
    {
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => (int)Integer(current is int i ? i : 0),
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => Integer(current is long l ? l : 0),
        FieldType.UInt32 or FieldType.Fixed32 => (uint)Integer(current is uint u ? u : 0),
        FieldType.UInt64 or FieldType.Fixed64 => (ulong)Integer(current is ulong u ? (long)u : 0),
        FieldType.Double => EdgeDoubles[random.Next(EdgeDoubles.Length)],
        FieldType.Float => (float)EdgeDoubles[random.Next(EdgeDoubles.Length)],
        FieldType.Bool => current is not true,
        // Unknown values too: a proto3 enum field carries any number.
        FieldType.Enum => random.Next(-2, 8),
        FieldType.String => Name(current as string ?? ""),
        FieldType.Bytes => Bytes(current as ByteString ?? ByteString.Empty),
        _ => current!,
    };

    private long Integer(long current) => random.Next(4) switch
    {
        0 => current + random.Next(-2, 3),
        1 => random.Next(-10, 1000),
        _ => EdgeIntegers[random.Next(EdgeIntegers.Length)],
    };

    private string Name(string current) => random.Next(12) switch
    {
        0 => "",
        1 => current + "x",
        2 => current.Length > 1 ? current[..random.Next(current.Length)] : current,
        3 => "runs/" + Guid.NewGuid().ToString("N"),
        4 => "datasets/" + Guid.NewGuid().ToString("N"),
        5 => "../../../../etc/passwd",
        6 => new string('a', 100_000),
        7 => "runs/\0/snapshots/-1",
        8 => current + "/snapshots/99999999999999999999",
        9 => "runs/ü-😀 /snapshots/1",
        _ => knownNames.Count > 0 ? knownNames[random.Next(knownNames.Count)] + (random.Next(2) == 0 ? "" : "/snapshots/" + random.Next(-1, 30)) : "",
    };

    private ByteString Bytes(ByteString current)
    {
        switch (random.Next(5))
        {
            case 0: return ByteString.CopyFrom(current.Span[..random.Next(current.Length + 1)]);
            case 1: return ByteString.CopyFrom([.. current.Span, .. RandomBytes(random.Next(1, 64))]);
            case 2: return ByteString.CopyFrom(RandomBytes(random.Next(1, 8) << 20));
            default:
                // The same length, every value NaN or an infinity, as float32 and float64 alike would read it.
                var values = new double[current.Length / 8 + 1];
                Array.Fill(values, random.Next(2) == 0 ? double.NaN : double.PositiveInfinity);
                var bytes = MemoryMarshal.AsBytes(values.AsSpan())[..current.Length].ToArray();
                if (random.Next(2) == 0) MemoryMarshal.Cast<byte, float>(bytes.AsSpan(0, bytes.Length / 4 * 4)).Fill(float.NaN);
                return ByteString.CopyFrom(bytes);
        }
    }

    private byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
