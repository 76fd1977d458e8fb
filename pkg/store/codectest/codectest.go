// Package codectest is the one test harness for Cairn's hand-written
// protobuf codecs (ingestion's log records, health's stored scores,
// routing's assignments): random messages that stress an encoding, and a
// guard that fails when a message gains a field its codec does not know.
// Each codec's tests hold it to the protobuf runtime with these.
package codectest

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// runes are what random strings are made of: ASCII, NUL, two-, three- and
// four-byte runes.
var runes = []rune("abcxyz019_-@. \x00éü€☃日本🙂𝄞")

// String is a random valid UTF-8 string: empty now and then, mostly short,
// sometimes long enough to need a two-byte length prefix.
func String(r *rand.Rand) string {
	if r.IntN(8) == 0 {
		return ""
	}
	n := r.IntN(12)
	if r.IntN(10) == 0 {
		n = 100 + r.IntN(300)
	}
	var b strings.Builder
	for range n {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	return b.String()
}

// Fill sets the fields of m, recursively down to depth levels of messages,
// to random values that stress an encoding (negative zero, extreme
// integers, empty and multi-byte strings, unknown enum numbers). Each field
// is left unset one time in four, so that omitting empty fields is
// exercised too. It walks the descriptor, so a field added to a message is
// filled without a change here.
func Fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.IntN(4) == 0 {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range 1 + r.IntN(3) {
				v := mp.NewValue()
				if fd.MapValue().Message() != nil {
					if depth <= 0 {
						break
					}
					Fill(r, v.Message(), depth-1)
				} else {
					v = scalar(r, fd.MapValue())
				}
				mp.Set(scalar(r, fd.MapKey()).MapKey(), v)
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 1 + r.IntN(3) {
				if fd.Message() != nil {
					if depth <= 0 {
						break
					}
					v := l.NewElement()
					Fill(r, v.Message(), depth-1)
					l.Append(v)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.Message() != nil:
			if depth > 0 {
				Fill(r, m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

// Unknown gives m, one time in six, an unknown field of a random wire type,
// as a newer writer would leave it.
func Unknown(r *rand.Rand, m protoreflect.Message) {
	if r.IntN(6) != 0 {
		return
	}
	num := protowire.Number(1000 + r.IntN(1000))
	var b []byte
	switch r.IntN(3) {
	case 0:
		b = protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), r.Uint64())
	case 1:
		b = protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), r.Uint64())
	default:
		b = protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), String(r))
	}
	m.SetUnknown(b)
}

// scalar is a random value of a non-message field.
func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(10) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(vals.Len() + r.IntN(5))) // unknown to this build
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32([]int32{0, 1, -1, 300, math.MaxInt32, math.MinInt32, int32(r.Uint32())}[r.IntN(7)])
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64([]int64{0, 1, -1, 1 << 40, math.MaxInt64, math.MinInt64, int64(r.Uint64())}[r.IntN(7)])
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32([]uint32{0, 1, 300, math.MaxUint32, r.Uint32()}[r.IntN(5)])
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64([]uint64{0, 1, 300, math.MaxUint64, r.Uint64()}[r.IntN(5)])
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32([]float32{0, float32(math.Copysign(0, -1)), 1.5, -2.5e10, r.Float32()}[r.IntN(5)])
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64([]float64{0, math.Copysign(0, -1), 1, -2.5, r.NormFloat64() * 1e6, math.MaxFloat64}[r.IntN(6)])
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(String(r))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(String(r)))
	}
	panic("codectest: no random value for kind " + fd.Kind().String())
}

// Known lists, for each message a codec writes or reads, the field numbers
// it handles, declared next to the codec. A message listed with nil fields
// is one the codec leaves to the protobuf runtime (proto.Marshal): it is
// neither checked nor walked into.
type Known map[protoreflect.FullName][]protowire.Number

// CheckFields fails t when a message reachable from roots (through message,
// list and map fields) has fields other than those known lists, or is not
// listed at all; and when known lists a message no root reaches. So adding
// a field to a stored message fails the build's tests until its codec (and
// the list beside it) handles the field.
func CheckFields(t testing.TB, known Known, roots ...proto.Message) {
	t.Helper()
	seen := map[protoreflect.FullName]bool{}
	var visit func(d protoreflect.MessageDescriptor)
	visit = func(d protoreflect.MessageDescriptor) {
		if seen[d.FullName()] {
			return
		}
		seen[d.FullName()] = true
		want, ok := known[d.FullName()]
		switch {
		case !ok:
			t.Errorf("%s is reached by the codec's messages but its codec declares no fields for it", d.FullName())
			return
		case want == nil:
			return // left to the protobuf runtime
		}
		var have []protowire.Number
		for i := range d.Fields().Len() {
			f := d.Fields().Get(i)
			have = append(have, f.Number())
			if f.Message() != nil {
				visit(f.Message())
			}
		}
		slices.Sort(have)
		if want = slices.Sorted(slices.Values(want)); !slices.Equal(have, want) {
			t.Errorf("%s has fields %v, the codec handles %v: update the codec and its field list", d.FullName(), have, want)
		}
	}
	for _, m := range roots {
		visit(m.ProtoReflect().Descriptor())
	}
	for name := range known {
		if !seen[name] {
			t.Errorf("the codec's field list names %s, which none of its messages holds", name)
		}
	}
}

// CheckMessage fails t when m's own fields are not exactly known: for a
// codec that handles one message's fields by hand and passes every nested
// message through as bytes.
func CheckMessage(t testing.TB, m proto.Message, known []protowire.Number) {
	t.Helper()
	d := m.ProtoReflect().Descriptor()
	var have []protowire.Number
	for i := range d.Fields().Len() {
		have = append(have, d.Fields().Get(i).Number())
	}
	slices.Sort(have)
	if want := slices.Sorted(slices.Values(known)); !slices.Equal(have, want) {
		t.Errorf("%s has fields %v, the codec handles %v: update the codec and its field list", d.FullName(), have, want)
	}
}
