package store_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// fill sets each field of m with probability 3/4 to a random value that
// stresses the encoding (negative zero, empty and long strings, multi-byte
// text, nested messages over 127 bytes, unknown fields). It fails on a field
// kind it does not know, so a new kind of field cannot go untested.
func fill(t *testing.T, r *rand.Rand, m protoreflect.Message, depth int) {
	t.Helper()
	strs := []string{"", "w", "acct-000001", "é✓ unicode", strings.Repeat("long text ", 20)}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if r.IntN(4) == 0 {
			continue
		}
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			for j := r.IntN(4); j > 0; j-- {
				mp.Set(protoreflect.ValueOfString(strs[r.IntN(len(strs))]).MapKey(), protoreflect.ValueOfString(strs[r.IntN(len(strs))]))
			}
		case f.IsList():
			if f.Kind() != protoreflect.MessageKind {
				t.Fatalf("field %s: repeated %s not handled by this test", f.FullName(), f.Kind())
			}
			l := m.Mutable(f).List()
			for j := r.IntN(4); j > 0 && depth < 3; j-- {
				v := l.NewElement()
				fill(t, r, v.Message(), depth+1)
				l.Append(v)
			}
		case f.Kind() == protoreflect.MessageKind:
			if depth < 3 {
				fill(t, r, m.Mutable(f).Message(), depth+1)
			}
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(strs[r.IntN(len(strs))]))
		case f.Kind() == protoreflect.DoubleKind:
			m.Set(f, protoreflect.ValueOfFloat64([]float64{0, math.Copysign(0, -1), 1, -2.5, r.NormFloat64() * 1e6}[r.IntN(5)]))
		case f.Kind() == protoreflect.EnumKind:
			m.Set(f, protoreflect.ValueOfEnum(protoreflect.EnumNumber(r.IntN(5)-1)))
		case f.Kind() == protoreflect.Int32Kind:
			m.Set(f, protoreflect.ValueOfInt32([]int32{0, 1, -1, 300, math.MaxInt32, math.MinInt32}[r.IntN(6)]))
		case f.Kind() == protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOfInt64([]int64{0, 1, -1, 1 << 40, math.MinInt64}[r.IntN(5)]))
		case f.Kind() == protoreflect.Uint32Kind:
			m.Set(f, protoreflect.ValueOfUint32([]uint32{0, 1, 300, math.MaxUint32}[r.IntN(4)]))
		default:
			t.Fatalf("field %s: kind %s not handled by this test", f.FullName(), f.Kind())
		}
	}
	if r.IntN(8) == 0 {
		var u []byte
		u = protowire.AppendTag(u, 1000, protowire.BytesType)
		u = protowire.AppendString(u, "from a newer version")
		m.SetUnknown(u)
	}
}

// TestWireMatchesMarshal checks the hand-written encoders byte for byte
// against deterministic proto marshalling.
func TestWireMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	check := func(m proto.Message, got []byte, err error) {
		t.Helper()
		want, werr := store.Marshal(m)
		if err != nil || werr != nil {
			t.Fatalf("errors %v / %v for %v", err, werr, m)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encoding of %T differs:\ngot  %x\nwant %x\n%v", m, got, want, m)
		}
	}
	for i := 0; i < 3000; i++ {
		h := &healthv1.AccountHealth{}
		fill(t, r, h.ProtoReflect(), 0)
		b, err := store.MarshalHealth(h)
		check(h, b, err)

		row := &healthv1.AccountRow{}
		fill(t, r, row.ProtoReflect(), 0)
		b, err = store.MarshalRow(row)
		check(row, b, err)

		s := &commonv1.Signal{}
		fill(t, r, s.ProtoReflect(), 0)
		b, err = store.MarshalSignal(s)
		check(s, b, err)

		sc := &healthv1.ScoreChange{}
		fill(t, r, sc.ProtoReflect(), 0)
		b, err = store.MarshalScoreChangeRecord(sc)
		check(&healthv1.LogRecord{Kind: &healthv1.LogRecord_ScoreChange{ScoreChange: sc}}, b, err)
	}
}

func TestWireRejectsInvalidUTF8(t *testing.T) {
	bad := string([]byte{0xff, 'x'})
	if _, err := store.MarshalHealth(&healthv1.AccountHealth{AccountId: bad}); err == nil {
		t.Error("health: no error")
	}
	if _, err := store.MarshalHealth(&healthv1.AccountHealth{OpenSignals: []*commonv1.Signal{{Attributes: map[string]string{bad: ""}}}}); err == nil {
		t.Error("signal attribute in health: no error")
	}
	if _, err := store.MarshalRow(&healthv1.AccountRow{Stage: bad}); err == nil {
		t.Error("row: no error")
	}
}

// TestUnmarshalHealth decodes random records through the fast path and
// odd encodings through the fallback, always as proto.Unmarshal would.
func TestUnmarshalHealth(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	check := func(b []byte) {
		t.Helper()
		want := &healthv1.AccountHealth{}
		werr := proto.Unmarshal(b, want)
		got, err := store.UnmarshalHealth(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("error %v, want %v", err, werr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("decoded\n%v\nwant\n%v", got, want)
		}
	}
	for i := 0; i < 3000; i++ {
		h := &healthv1.AccountHealth{}
		fill(t, r, h.ProtoReflect(), 0)
		b, err := store.MarshalHealth(h)
		if err != nil {
			t.Fatal(err)
		}
		check(b)
		// Not canonical: fields out of order, repeated, or cut short.
		if len(b) > 4 {
			check(append(append([]byte{}, b[len(b)/2:]...), b[:len(b)/2]...))
			check(b[:len(b)-1-r.IntN(3)])
		}
		other, _ := proto.Marshal(&healthv1.AccountHealth{Score: 1, Band: 2, ModelId: "x"})
		check(append(append([]byte{}, b...), other...))
	}
	check(nil)
	check([]byte{0x0a, 0x02, 0xff, 0xfe}) // invalid UTF-8 workspace
}
