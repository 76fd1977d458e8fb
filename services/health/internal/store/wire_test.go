package store_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

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
		case f.Kind() == protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(r.IntN(2) == 0))
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

// TestWireRoundTrip decodes what the encoders write, with proto.Unmarshal
// and (for health) UnmarshalHealth, and gets every random message back.
func TestWireRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	back := func(orig, decoded proto.Message, b []byte) {
		t.Helper()
		if err := proto.Unmarshal(b, decoded); err != nil {
			t.Fatalf("%T: %v", orig, err)
		}
		if !proto.Equal(decoded, orig) {
			t.Fatalf("%T round trip:\ngot  %v\nwant %v", orig, decoded, orig)
		}
	}
	for i := 0; i < 2000; i++ {
		h := &healthv1.AccountHealth{}
		fill(t, r, h.ProtoReflect(), 0)
		b, err := store.MarshalHealth(h)
		if err != nil {
			t.Fatal(err)
		}
		back(h, &healthv1.AccountHealth{}, b)
		got, err := store.UnmarshalHealth(b)
		if err != nil || !proto.Equal(got, h) {
			t.Fatalf("UnmarshalHealth round trip: %v\ngot  %v\nwant %v", err, got, h)
		}

		row := &healthv1.AccountRow{}
		fill(t, r, row.ProtoReflect(), 0)
		if b, err = store.MarshalRow(row); err != nil {
			t.Fatal(err)
		}
		back(row, &healthv1.AccountRow{}, b)

		s := &commonv1.Signal{}
		fill(t, r, s.ProtoReflect(), 0)
		if b, err = store.MarshalSignal(s); err != nil {
			t.Fatal(err)
		}
		back(s, &commonv1.Signal{}, b)
		back(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: s}}, &healthv1.LogRecord{}, store.SignalRecord(b))

		sc := &healthv1.ScoreChange{}
		fill(t, r, sc.ProtoReflect(), 0)
		if b, err = store.MarshalScoreChangeRecord(sc); err != nil {
			t.Fatal(err)
		}
		back(&healthv1.LogRecord{Kind: &healthv1.LogRecord_ScoreChange{ScoreChange: sc}}, &healthv1.LogRecord{}, b)
	}
}

// TestWireKnowsEveryField fails when a message the encoders write (or one
// nested in it) gains or loses a field that wireFields, and so the
// encoders and UnmarshalHealth, do not list.
func TestWireKnowsEveryField(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var visit func(d protoreflect.MessageDescriptor)
	visit = func(d protoreflect.MessageDescriptor) {
		if seen[d.FullName()] {
			return
		}
		seen[d.FullName()] = true
		known, ok := store.WireFields[d.FullName()]
		if !ok {
			t.Errorf("%s is written by the encoders but not in wireFields", d.FullName())
			return
		}
		var have []protowire.Number
		for i := 0; i < d.Fields().Len(); i++ {
			f := d.Fields().Get(i)
			have = append(have, f.Number())
			switch {
			case f.IsMap():
				// Only Signal.attributes, a map<string, string>.
				if f.MapKey().Kind() != protoreflect.StringKind || f.MapValue().Kind() != protoreflect.StringKind {
					t.Errorf("%s: map of %s to %s, the encoders write string maps only", f.FullName(), f.MapKey().Kind(), f.MapValue().Kind())
				}
			case f.Kind() == protoreflect.MessageKind:
				visit(f.Message())
			}
		}
		slices.Sort(have)
		if want := slices.Sorted(slices.Values(known)); !slices.Equal(have, want) {
			t.Errorf("%s has fields %v, the encoders know %v: update wire.go and wireFields", d.FullName(), have, want)
		}
	}
	for _, m := range []proto.Message{&healthv1.AccountHealth{}, &healthv1.AccountRow{}, &commonv1.Signal{}, &healthv1.ScoreChange{}} {
		visit(m.ProtoReflect().Descriptor())
	}
	for name := range store.WireFields {
		if !seen[name] {
			t.Errorf("wireFields lists %s, which no encoded message holds", name)
		}
	}
}

// benchHealth is a typical stored health record: nine components, changes
// and two open signals.
func benchHealth() *healthv1.AccountHealth {
	r := rand.New(rand.NewPCG(1, 2))
	h := &healthv1.AccountHealth{Workspace: "w", AccountId: "acct-000042", Score: 71.5, Band: healthv1.Band_BAND_NEUTRAL,
		PreviousScore: 69, Trend_7D: 2.5, Trend_30D: -4, Direction: "up", ModelId: "default", ModelVersion: 3,
		ComputedAt: timestamppb.Now(), Stage: "adoption", Arr: 42000, ContractEnd: timestamppb.Now()}
	for i := 0; i < 9; i++ {
		h.Components = append(h.Components, &healthv1.ComponentScore{Name: "component_" + strings.Repeat("x", i), RawValue: r.Float64() * 10,
			Points: float64(r.IntN(101)), Weight: 10, Contribution: r.Float64() * 10, Explanation: "12 of 20 seats active in the last 30 days"})
	}
	for i := 0; i < 3; i++ {
		h.Changes = append(h.Changes, &healthv1.Change{Component: "component_x", PreviousContribution: 3, Contribution: 5, Reason: "more users"})
	}
	for _, reason := range []string{"renewal_window_90", "single_active_user"} {
		h.OpenSignals = append(h.OpenSignals, &commonv1.Signal{Workspace: "w", AccountId: "acct-000042", SignalId: "acct-000042/risk/" + reason,
			Kind: commonv1.SignalKind_SIGNAL_KIND_RISK, Reason: reason, Message: "a message about " + reason,
			State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.Now(), Attributes: map[string]string{"play": "qbr", "days": "90"}})
	}
	return h
}

// The encoders pay for themselves when these beat their Proto twins: a
// rescore encodes a health record, a row and the changed signals per
// account, and decodes the previous health.
func BenchmarkMarshalHealth(b *testing.B) {
	h := benchHealth()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.MarshalHealth(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalHealthProto(b *testing.B) {
	h := benchHealth()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Marshal(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalHealth(b *testing.B) {
	raw, err := store.MarshalHealth(benchHealth())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.UnmarshalHealth(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalHealthProto(b *testing.B) {
	raw, err := store.MarshalHealth(benchHealth())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := proto.Unmarshal(raw, &healthv1.AccountHealth{}); err != nil {
			b.Fatal(err)
		}
	}
}
