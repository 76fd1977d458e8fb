package signals

import (
	"fmt"
	"math"
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestCloneSignalCopiesEveryField sets every field of a Signal, so a field
// added to the message later fails here until cloneSignal copies it.
func TestCloneSignalCopiesEveryField(t *testing.T) {
	s := &commonv1.Signal{}
	m := s.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(string(f.Name())))
		case f.Kind() == protoreflect.EnumKind:
			m.Set(f, protoreflect.ValueOfEnum(1))
		case f.Message() != nil && f.Message().FullName() == "google.protobuf.Timestamp":
			m.Set(f, protoreflect.ValueOfMessage(timestamppb.New(timestamppb.Now().AsTime()).ProtoReflect()))
		default:
			t.Fatalf("field %s of kind %s: teach this test (and cloneSignal) about it", f.Name(), f.Kind())
		}
	}
	m.SetUnknown(protoreflect.RawFields{0xf8, 0x01, 0x07}) // field 31, varint 7
	c := cloneSignal(s)
	if !proto.Equal(s, c) {
		t.Fatalf("clone differs:\n%v\n%v", s, c)
	}
	c.Attributes["k"] = "changed"
	c.OpenedAt.Seconds++
	if s.GetAttributes()["k"] != "v" || proto.Equal(s, c) {
		t.Fatal("clone shares state with the original")
	}
}

// TestF0MatchesFmt keeps signal messages as fmt's %.0f wrote them.
func TestF0MatchesFmt(t *testing.T) {
	for _, v := range []float64{0, math.Copysign(0, -1), -0.4, 0.5, 1.5, 2.5, -2.5, 99.99, 1e21, -1e-9, 123456.5, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got, want := f0(v), fmt.Sprintf("%.0f", v); got != want {
			t.Errorf("f0(%v) = %q, want %q", v, got, want)
		}
	}
}
