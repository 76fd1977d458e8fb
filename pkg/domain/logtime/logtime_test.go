package logtime

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

func TestTimes(t *testing.T) {
	t1, t2 := time.Unix(100, 0).UTC(), time.Unix(200, 0).UTC()
	open := &commonv1.Signal{State: commonv1.SignalState_SIGNAL_STATE_OPEN, OpenedAt: timestamppb.New(t1)}
	closed := &commonv1.Signal{State: commonv1.SignalState_SIGNAL_STATE_CLOSED, OpenedAt: timestamppb.New(t1), ClosedAt: timestamppb.New(t2)}
	closedNoTime := &commonv1.Signal{State: commonv1.SignalState_SIGNAL_STATE_CLOSED, OpenedAt: timestamppb.New(t1)}
	tomb := &commonv1.Tombstone{AccountId: "a"}
	tests := []struct {
		name string
		got  time.Time
		want time.Time
	}{
		{"event", Ingestion(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Timestamp: timestamppb.New(t1)}}}), t1},
		{"ingestion tombstone", Ingestion(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: tomb}}), time.Time{}},
		{"transition", Stages(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{At: timestamppb.New(t2)}}}), t2},
		{"stage signal open", Stages(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Signal{Signal: open}}), t1},
		{"stages tombstone", Stages(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Tombstone{Tombstone: tomb}}), time.Time{}},
		{"score change", Health(&healthv1.LogRecord{Kind: &healthv1.LogRecord_ScoreChange{ScoreChange: &healthv1.ScoreChange{At: timestamppb.New(t1)}}}), t1},
		{"health signal closed", Health(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: closed}}), t2},
		{"closed without closed_at", Signal(closedNoTime), t1},
		{"health tombstone", Health(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Tombstone{Tombstone: tomb}}), time.Time{}},
		{"assignment", Routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: &routingv1.Assignment{CreatedAt: timestamppb.New(t1)}}}), t1},
		{"sla event", Routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: &routingv1.SlaEvent{At: timestamppb.New(t2)}}}), t2},
		{"routing tombstone", Routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_Tombstone{Tombstone: tomb}}), time.Time{}},
		{"invalid timestamp", Signal(&commonv1.Signal{OpenedAt: &timestamppb.Timestamp{Seconds: -1 << 62}}), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.got.Equal(tt.want) {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}
