package store

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/store/codectest"
)

// TestSpliceAssignment checks that the timer loop's partial decoding reads
// the right fields and that replacing state and SLA clock in the encoded
// bytes yields the message (and, without maps, the bytes) proto.Marshal
// gives for the changed assignment.
func TestSpliceAssignment(t *testing.T) {
	at := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	clock := &routingv1.SlaState{Policy: "mql", Allowed: durationpb.New(time.Hour), Used: durationpb.New(0), DueAt: timestamppb.New(at.Add(time.Hour))}
	full := &routingv1.Assignment{
		Workspace: "ws", AssignmentId: "as_000000000042", Type: routingv1.HandoffType_HANDOFF_TYPE_SQL, AccountId: "acme",
		Lead:    &routingv1.Lead{Email: "pat@acme.com", Name: "Pat"},
		OwnerId: "alice", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN,
		Decision: &routingv1.Decision{Rule: "r", PoolId: "p", Candidates: []*routingv1.Candidate{
			{OwnerId: "bob", SkippedBecause: "at_capacity", OpenAssignments: 3}, {OwnerId: "alice", Chosen: true},
		}},
		Sla: clock, CreatedAt: timestamppb.New(at), FirstTouchAt: timestamppb.New(at.Add(time.Minute)),
		PreviousOwnerIds: []string{"carol", "dave"}, Reason: "why",
	}
	withAttrs := proto.Clone(full).(*routingv1.Assignment)
	withAttrs.Lead.Attributes = map[string]string{"plan": "trial", "seats": "12"}
	cases := []struct {
		name  string
		a     *routingv1.Assignment
		maps  bool
		state routingv1.AssignmentState
	}{
		{"every field", full, false, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED},
		{"lead attributes", withAttrs, true, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED},
		{"state unchanged", full, false, routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
		{"state cleared", full, false, 0},
		{"no state before", &routingv1.Assignment{AssignmentId: "x", Decision: &routingv1.Decision{Rule: "r"}, Sla: clock}, false, routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED},
		{"only ids", &routingv1.Assignment{AssignmentId: "x", OwnerId: "o"}, false, routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
		{"trailing fields only", &routingv1.Assignment{Reason: "r", PreviousOwnerIds: []string{"a"}}, false, routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := proto.Marshal(c.a)
			if err != nil {
				t.Fatal(err)
			}
			light, ok := LightAssignment(raw)
			if !ok {
				t.Fatal("encoding not accepted")
			}
			want := &routingv1.Assignment{AssignmentId: c.a.GetAssignmentId(), Type: c.a.GetType(), AccountId: c.a.GetAccountId(), OwnerId: c.a.GetOwnerId(), State: c.a.GetState(), Sla: c.a.GetSla()}
			if !proto.Equal(light, want) {
				t.Fatalf("light decoding %v, want %v", light, want)
			}
			changed := proto.Clone(c.a).(*routingv1.Assignment)
			changed.State = c.state
			changed.Sla = &routingv1.SlaState{Policy: "mql", Allowed: durationpb.New(time.Hour), Used: durationpb.New(time.Hour), Warned_50: true, Warned_80: true, Breached: true}
			st, err := proto.Marshal(changed.GetSla())
			if err != nil {
				t.Fatal(err)
			}
			got := SpliceAssignment(raw, changed.GetState(), st)
			dec := &routingv1.Assignment{}
			if err := proto.Unmarshal(got, dec); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(dec, changed) {
				t.Fatalf("spliced %v\nwant %v", dec, changed)
			}
			if wantRaw, _ := proto.Marshal(changed); !c.maps && !bytes.Equal(got, wantRaw) {
				t.Fatalf("spliced bytes %x\nwant %x", got, wantRaw)
			}
		})
	}
}

// TestScanAssignmentRejects makes the timer loop decode in full whatever
// proto.Marshal would not have written.
func TestScanAssignmentRejects(t *testing.T) {
	raw, err := proto.Marshal(&routingv1.Assignment{AssignmentId: "x", OwnerId: "o", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	state := protowire.AppendVarint(protowire.AppendTag(nil, stateField, protowire.VarintType), 2)
	for name, b := range map[string][]byte{
		"truncated":           raw[:len(raw)-1],
		"state twice":         append(append([]byte(nil), raw[:len(raw)-3]...), append(state, raw[len(raw)-3:]...)...),
		"out of order":        append(append([]byte(nil), raw...), state...),
		"owner as a varint":   protowire.AppendVarint(protowire.AppendTag(nil, ownerIDField, protowire.VarintType), 1),
		"state as bytes":      protowire.AppendBytes(protowire.AppendTag(nil, stateField, protowire.BytesType), []byte("x")),
		"bad sla length":      protowire.AppendTag(nil, slaField, protowire.BytesType),
		"garbage tag":         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"sla not an SlaState": protowire.AppendBytes(protowire.AppendTag(nil, slaField, protowire.BytesType), []byte{0xff}),
	} {
		if _, ok := LightAssignment(b); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, ok := LightAssignment(raw); !ok {
		t.Fatal("valid encoding rejected")
	}
}

// TestAssignmentCodecFields fails when routingv1.Assignment gains (or
// loses) a field the codec has not been checked against.
func TestAssignmentCodecFields(t *testing.T) {
	codectest.CheckMessage(t, &routingv1.Assignment{}, assignmentFields)
}

// TestAssignmentCodecRandom checks LightAssignment and SpliceAssignment
// against proto.Unmarshal and proto.Marshal on random assignments, every
// field filled (or left empty) by a seeded generator: the light decoding
// has the fields proto.Unmarshal finds, and the spliced encoding decodes to
// the assignment with the new state and clock, byte for byte what
// proto.Marshal writes when there is no map to order.
func TestAssignmentCodecRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 0))
	det := proto.MarshalOptions{Deterministic: true}
	for i := range 3000 {
		a := &routingv1.Assignment{}
		codectest.Fill(r, a.ProtoReflect(), 4)
		raw, err := det.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		light, ok := LightAssignment(raw)
		if !ok {
			t.Fatalf("#%d: encoding of %v not accepted", i, a)
		}
		want := &routingv1.Assignment{AssignmentId: a.GetAssignmentId(), Type: a.GetType(), AccountId: a.GetAccountId(), OwnerId: a.GetOwnerId(), State: a.GetState(), Sla: a.GetSla()}
		if !proto.Equal(light, want) {
			t.Fatalf("#%d: light decoding %v, want %v", i, light, want)
		}
		changed := proto.Clone(a).(*routingv1.Assignment)
		changed.State = routingv1.AssignmentState(r.IntN(len(routingv1.AssignmentState_name)))
		changed.Sla = &routingv1.SlaState{}
		codectest.Fill(r, changed.Sla.ProtoReflect(), 2)
		st, err := det.Marshal(changed.GetSla())
		if err != nil {
			t.Fatal(err)
		}
		got := SpliceAssignment(raw, changed.GetState(), st)
		dec := &routingv1.Assignment{}
		if err := proto.Unmarshal(got, dec); err != nil {
			t.Fatalf("#%d: spliced encoding does not decode: %v", i, err)
		}
		if !proto.Equal(dec, changed) {
			t.Fatalf("#%d: spliced %v\nwant %v", i, dec, changed)
		}
		if wantRaw, err := det.Marshal(changed); err != nil || !bytes.Equal(got, wantRaw) {
			t.Fatalf("#%d: spliced bytes %x\nwant %x (%v)", i, got, wantRaw, err)
		}
	}
}

// benchAssignment is an assignment as the timer loop finds it: a lead, a
// decision with candidates, a running clock.
func benchAssignment() *routingv1.Assignment {
	at := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	return &routingv1.Assignment{
		Workspace: "ws", AssignmentId: "as_000000000042", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, AccountId: "acct42",
		Lead:    &routingv1.Lead{Email: "l42@acme.com", AccountId: "acct42", Attributes: map[string]string{"plan": "trial"}},
		OwnerId: "alice", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN,
		Decision: &routingv1.Decision{Rule: "sdr", PoolId: "sdr", Candidates: []*routingv1.Candidate{
			{OwnerId: "alice", Chosen: true, OpenAssignments: 3}, {OwnerId: "bob", SkippedBecause: "at_capacity", OpenAssignments: 9},
		}},
		Sla:       &routingv1.SlaState{Policy: "mql", Allowed: durationpb.New(time.Hour), Used: durationpb.New(0), DueAt: timestamppb.New(at.Add(time.Hour))},
		CreatedAt: timestamppb.New(at),
	}
}

// BenchmarkAssignmentCodec compares what the timer loop does with a stored
// assignment per fired timer, read the clock and write back state and
// clock, through the codec ("splice") and through protobuf ("proto").
func BenchmarkAssignmentCodec(b *testing.B) {
	raw, err := proto.Marshal(benchAssignment())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("splice", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a, ok := LightAssignment(raw)
			if !ok {
				b.Fatal("not accepted")
			}
			a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
			a.Sla.Breached = true
			st, err := proto.Marshal(a.GetSla())
			if err != nil {
				b.Fatal(err)
			}
			if SpliceAssignment(raw, a.GetState(), st) == nil {
				b.Fatal("splice failed")
			}
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := &routingv1.Assignment{}
			if err := proto.Unmarshal(raw, a); err != nil {
				b.Fatal(err)
			}
			a.State = routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
			a.Sla.Breached = true
			if _, err := proto.Marshal(a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
