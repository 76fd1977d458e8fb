package server

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// TestSlaEventRecord checks the hand-written encoding against proto.Marshal
// byte for byte, and that it decodes back to the same event.
func TestSlaEventRecord(t *testing.T) {
	tests := []struct {
		name                          string
		ws, id, kind, owner, newOwner string
		at                            time.Time
	}{
		{"breach", "ws", "as_000000000001", "breach", "alice", "", time.Date(2026, 11, 16, 17, 0, 0, 0, time.UTC)},
		{"escalation with new owner and nanos", "ws", "as_1", "escalation", "alice", "bob", time.Date(2026, 11, 16, 17, 0, 0, 123456789, time.UTC)},
		{"empty strings", "", "", "warning_50", "", "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"epoch", "ws", "a", "met", "ü", "", time.Unix(0, 0)},
		{"before 1970", "ws", "a", "met", "o", "", time.Date(1960, 5, 1, 0, 0, 0, 5, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := proto.Marshal(&routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: &routingv1.SlaEvent{
				Workspace: tt.ws, AssignmentId: tt.id, Kind: tt.kind, OwnerId: tt.owner, NewOwnerId: tt.newOwner, At: timestamppb.New(tt.at),
			}}})
			if err != nil {
				t.Fatal(err)
			}
			got := slaEventRecord(tt.ws, tt.id, tt.kind, tt.owner, tt.newOwner, tt.at)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding\n got %x\nwant %x", got, want)
			}
			rec := &routingv1.LogRecord{}
			if err := proto.Unmarshal(got, rec); err != nil {
				t.Fatal(err)
			}
			if e := rec.GetSlaEvent(); e.GetKind() != tt.kind || !e.GetAt().AsTime().Equal(tt.at) || e.GetNewOwnerId() != tt.newOwner {
				t.Fatalf("decoded %v", e)
			}
		})
	}
}
