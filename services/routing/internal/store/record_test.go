package store

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/store/codectest"
	"github.com/cairn-dev/cairn/services/routing/internal/sla"
)

// TestSlaEventRecord checks the hand-written encoding against proto.Marshal
// byte for byte, and that it decodes back to the same event.
func TestSlaEventRecord(t *testing.T) {
	tests := []struct {
		name                          string
		ws, id, kind, owner, newOwner string
		at                            time.Time
		passed                        []sla.Timer
		assignment                    *routingv1.Assignment
	}{
		{"breach", "ws", "as_000000000001", "breach", "alice", "", time.Date(2026, 11, 16, 17, 0, 0, 0, time.UTC), nil, nil},
		{"escalation with new owner and nanos", "ws", "as_1", "escalation", "alice", "bob", time.Date(2026, 11, 16, 17, 0, 0, 123456789, time.UTC), nil, nil},
		{"empty strings", "", "", "warning_50", "", "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), nil, nil},
		{"epoch", "ws", "a", "met", "ü", "", time.Unix(0, 0), nil, nil},
		{"before 1970", "ws", "a", "met", "o", "", time.Date(1960, 5, 1, 0, 0, 0, 5, time.UTC), nil, nil},
		{"late breach", "ws", "as_1", "breach", "alice", "", time.Date(2026, 11, 16, 17, 0, 0, 0, time.UTC), []sla.Timer{
			{Kind: sla.Warning50, At: time.Date(2026, 11, 16, 13, 0, 0, 0, time.UTC)},
			{Kind: sla.Warning80, At: time.Date(2026, 11, 16, 15, 24, 0, 7, time.UTC)},
		}, nil},
		{"late warning at the epoch", "ws", "a", "warning_80", "o", "", time.Unix(0, 0), []sla.Timer{{Kind: sla.Warning50, At: time.Unix(0, 0)}}, nil},
		{"late breach carrying the assignment", "ws", "as_1", "breach", "alice", "", time.Date(2026, 11, 16, 17, 0, 0, 0, time.UTC),
			[]sla.Timer{{Kind: sla.Warning50, At: time.Date(2026, 11, 16, 13, 0, 0, 0, time.UTC)}},
			&routingv1.Assignment{Workspace: "ws", AssignmentId: "as_1", OwnerId: "alice", State: routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED, Sla: &routingv1.SlaState{Breached: true}}},
		{"on-time breach carrying the assignment", "ws", "as_1", "breach", "alice", "", time.Date(2026, 11, 16, 17, 0, 0, 0, time.UTC), nil,
			&routingv1.Assignment{AssignmentId: "as_1", State: routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &routingv1.SlaEvent{
				Workspace: tt.ws, AssignmentId: tt.id, Kind: tt.kind, OwnerId: tt.owner, NewOwnerId: tt.newOwner, At: timestamppb.New(tt.at),
			}
			for _, p := range tt.passed {
				ev.Passed = append(ev.Passed, &routingv1.PassedThreshold{Kind: string(p.Kind), At: timestamppb.New(p.At)})
			}
			var enc []byte
			if tt.assignment != nil {
				ev.Assignment = tt.assignment
				var err error
				if enc, err = proto.Marshal(tt.assignment); err != nil {
					t.Fatal(err)
				}
			}
			want, err := proto.Marshal(&routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: ev}})
			if err != nil {
				t.Fatal(err)
			}
			got := SLAEventRecord(tt.ws, tt.id, tt.kind, tt.owner, tt.newOwner, tt.at, tt.passed, enc)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding\n got %x\nwant %x", got, want)
			}
			rec := &routingv1.LogRecord{}
			if err := proto.Unmarshal(got, rec); err != nil {
				t.Fatal(err)
			}
			if e := rec.GetSlaEvent(); e.GetKind() != tt.kind || !e.GetAt().AsTime().Equal(tt.at) || e.GetNewOwnerId() != tt.newOwner || len(e.GetPassed()) != len(tt.passed) || !proto.Equal(e.GetAssignment(), tt.assignment) {
				t.Fatalf("decoded %v", e)
			}
		})
	}
}

// TestRecordCodecFields fails when a message the log record encoder writes
// gains (or loses) a field it has not been checked against.
func TestRecordCodecFields(t *testing.T) {
	codectest.CheckMessage(t, &routingv1.LogRecord{}, logRecordFields)
	codectest.CheckMessage(t, &routingv1.SlaEvent{}, slaEventFields)
	codectest.CheckMessage(t, &routingv1.PassedThreshold{}, passedThresholdFields)
	codectest.CheckMessage(t, &timestamppb.Timestamp{}, timestampFields)
}

// randTime is a random instant, on whole seconds one time in four, around
// the epoch one time in eight.
func randTime(r *rand.Rand) time.Time {
	sec := r.Int64N(4<<32) - 2<<32
	if r.IntN(8) == 0 {
		sec = r.Int64N(3) - 1
	}
	nsec := r.Int64N(1e9)
	if r.IntN(4) == 0 {
		nsec = 0
	}
	return time.Unix(sec, nsec)
}

// TestRecordCodecRandom checks SLAEventRecord and AssignmentRecord against
// proto.Marshal byte for byte on random events and assignments from a
// seeded generator.
func TestRecordCodecRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 0))
	det := proto.MarshalOptions{Deterministic: true}
	str := func() string {
		if r.IntN(4) == 0 {
			return ""
		}
		return codectest.String(r)
	}
	for i := range 3000 {
		ev := &routingv1.SlaEvent{Workspace: str(), AssignmentId: str(), Kind: str(), OwnerId: str(), NewOwnerId: str()}
		at := randTime(r)
		ev.At = timestamppb.New(at)
		var passed []sla.Timer
		for range r.IntN(4) {
			p := sla.Timer{Kind: sla.Kind(str()), At: randTime(r)}
			passed = append(passed, p)
			ev.Passed = append(ev.Passed, &routingv1.PassedThreshold{Kind: string(p.Kind), At: timestamppb.New(p.At)})
		}
		var enc []byte
		if r.IntN(2) == 0 {
			ev.Assignment = &routingv1.Assignment{}
			codectest.Fill(r, ev.Assignment.ProtoReflect(), 4)
			var err error
			if enc, err = det.Marshal(ev.Assignment); err != nil {
				t.Fatal(err)
			}
		}
		want, err := det.Marshal(&routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: ev}})
		if err != nil {
			t.Fatal(err)
		}
		if got := SLAEventRecord(ev.Workspace, ev.AssignmentId, ev.Kind, ev.OwnerId, ev.NewOwnerId, at, passed, enc); !bytes.Equal(got, want) {
			t.Fatalf("#%d: SLA event %v\n got %x\nwant %x", i, ev, got, want)
		}
		a := &routingv1.Assignment{}
		codectest.Fill(r, a.ProtoReflect(), 4)
		if enc, err = det.Marshal(a); err != nil {
			t.Fatal(err)
		}
		want, err = det.Marshal(&routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: a}})
		if err != nil {
			t.Fatal(err)
		}
		if got := AssignmentRecord(enc); !bytes.Equal(got, want) {
			t.Fatalf("#%d: assignment record of %v\n got %x\nwant %x", i, a, got, want)
		}
	}
}

// BenchmarkSLAEventRecord compares encoding a late breach event (two
// passed thresholds) with the encoder ("hand") and by building and
// marshalling the messages ("proto"), as each fired timer does.
func BenchmarkSLAEventRecord(b *testing.B) {
	at := time.Date(2026, 11, 16, 17, 0, 0, 0, time.UTC)
	passed := []sla.Timer{{Kind: sla.Warning50, At: at.Add(-4 * time.Hour)}, {Kind: sla.Warning80, At: at.Add(-96 * time.Minute)}}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = SLAEventRecord("ws", "as_000000000042", string(sla.Breach), "alice", "", at, passed, nil)
		}
	})
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev := &routingv1.SlaEvent{Workspace: "ws", AssignmentId: "as_000000000042", Kind: string(sla.Breach), OwnerId: "alice", At: timestamppb.New(at)}
			for _, p := range passed {
				ev.Passed = append(ev.Passed, &routingv1.PassedThreshold{Kind: string(p.Kind), At: timestamppb.New(p.At)})
			}
			if _, err := proto.Marshal(&routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: ev}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
