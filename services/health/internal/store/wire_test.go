package store_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/store/codectest"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

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
		codectest.Fill(r, h.ProtoReflect(), 3)
		b, err := store.MarshalHealth(h)
		check(h, b, err)

		row := &healthv1.AccountRow{}
		codectest.Fill(r, row.ProtoReflect(), 3)
		b, err = store.MarshalRow(row)
		check(row, b, err)

		s := &commonv1.Signal{}
		codectest.Fill(r, s.ProtoReflect(), 3)
		b, err = store.MarshalSignal(s)
		check(s, b, err)

		sc := &healthv1.ScoreChange{}
		codectest.Fill(r, sc.ProtoReflect(), 3)
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
		codectest.Fill(r, h.ProtoReflect(), 3)
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
		codectest.Fill(r, h.ProtoReflect(), 3)
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
		codectest.Fill(r, row.ProtoReflect(), 3)
		if b, err = store.MarshalRow(row); err != nil {
			t.Fatal(err)
		}
		back(row, &healthv1.AccountRow{}, b)

		s := &commonv1.Signal{}
		codectest.Fill(r, s.ProtoReflect(), 3)
		if b, err = store.MarshalSignal(s); err != nil {
			t.Fatal(err)
		}
		back(s, &commonv1.Signal{}, b)
		back(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: s}}, &healthv1.LogRecord{}, store.SignalRecord(b))

		sc := &healthv1.ScoreChange{}
		codectest.Fill(r, sc.ProtoReflect(), 3)
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
	codectest.CheckFields(t, store.WireFields, &healthv1.AccountHealth{}, &healthv1.AccountRow{}, &commonv1.Signal{}, &healthv1.ScoreChange{})
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
