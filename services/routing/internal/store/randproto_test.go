package store

import (
	"math/rand"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fill sets every field of m, recursively to depth levels of messages, to
// random values; each field is left empty one time in four, so that the
// codecs' omission of empty fields is exercised too. It walks the message
// descriptor, so a field added to a message is filled without a change
// here.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.Intn(4) == 0 {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range 1 + r.Intn(3) {
				v := mp.NewValue()
				if fd.MapValue().Message() != nil {
					fill(r, v.Message(), depth-1)
				} else {
					v = scalar(r, fd.MapValue())
				}
				mp.Set(scalar(r, fd.MapKey()).MapKey(), v)
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 1 + r.Intn(3) {
				if fd.Message() != nil {
					if depth <= 0 {
						break
					}
					v := l.NewElement()
					fill(r, v.Message(), depth-1)
					l.Append(v)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.Message() != nil:
			if depth > 0 {
				fill(r, m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

// runes are what random strings are made of: ASCII, NUL, multi-byte.
var runes = []rune("abcxyz019_-@. \x00éü€日本🙂")

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.Intn(12) {
		b.WriteRune(runes[r.Intn(len(runes))])
	}
	return b.String()
}

// scalar is a random value of a non-message field.
func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.Intn(2) == 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(r.Intn(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(r.Uint32()) >> r.Intn(32))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(r.Uint64()) >> r.Intn(64))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(r.Uint32() >> r.Intn(32))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(r.Uint64() >> r.Intn(64))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(r.Float32() * 1000)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(r.NormFloat64() * 1000)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(randString(r))
	case protoreflect.BytesKind:
		b := make([]byte, r.Intn(8))
		r.Read(b)
		return protoreflect.ValueOfBytes(b)
	}
	panic("no random value for kind " + fd.Kind().String())
}

// fieldNumbers lists m's field numbers in order.
func fieldNumbers(m proto.Message) []protowire.Number {
	fields := m.ProtoReflect().Descriptor().Fields()
	out := make([]protowire.Number, 0, fields.Len())
	for i := range fields.Len() {
		out = append(out, fields.Get(i).Number())
	}
	slices.Sort(out)
	return out
}

// checkFields fails when m's fields are not exactly known, the field
// numbers a codec declares it handles.
func checkFields(t *testing.T, m proto.Message, known []protowire.Number) {
	t.Helper()
	if got := fieldNumbers(m); !slices.Equal(got, known) {
		t.Errorf("%s has fields %v; the codec knows %v: check the codec against the new message and update its list",
			m.ProtoReflect().Descriptor().FullName(), got, known)
	}
}
