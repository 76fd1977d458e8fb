package logws_test

import (
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/logws"
)

func TestWorkspaces(t *testing.T) {
	ts := &commonv1.Tombstone{Workspace: "t"}
	sig := &commonv1.Signal{Workspace: "s"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"ingestion event", logws.Ingestion(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{Workspace: "e"}}}), "e"},
		{"ingestion tombstone", logws.Ingestion(&ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Tombstone{Tombstone: ts}}), "t"},
		{"stages transition", logws.Stages(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Transition{Transition: &stagesv1.Transition{Workspace: "x"}}}), "x"},
		{"stages signal", logws.Stages(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Signal{Signal: sig}}), "s"},
		{"stages tombstone", logws.Stages(&stagesv1.LogRecord{Kind: &stagesv1.LogRecord_Tombstone{Tombstone: ts}}), "t"},
		{"health score", logws.Health(&healthv1.LogRecord{Kind: &healthv1.LogRecord_ScoreChange{ScoreChange: &healthv1.ScoreChange{Workspace: "h"}}}), "h"},
		{"health signal", logws.Health(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Signal{Signal: sig}}), "s"},
		{"health tombstone", logws.Health(&healthv1.LogRecord{Kind: &healthv1.LogRecord_Tombstone{Tombstone: ts}}), "t"},
		{"routing assignment", logws.Routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_Assignment{Assignment: &routingv1.Assignment{Workspace: "a"}}}), "a"},
		{"routing sla", logws.Routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_SlaEvent{SlaEvent: &routingv1.SlaEvent{Workspace: "l"}}}), "l"},
		{"routing tombstone", logws.Routing(&routingv1.LogRecord{Kind: &routingv1.LogRecord_Tombstone{Tombstone: ts}}), "t"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: workspace %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestOwned(t *testing.T) {
	recs := []string{"a", "b", "a", "c"}
	id := func(s string) string { return s }
	if got := logws.Owned(nil, recs, id); len(got) != 4 {
		t.Fatalf("nil owns kept %v, want all", got)
	}
	got := logws.Owned(func(ws string) bool { return ws == "a" }, recs, id)
	if len(got) != 2 || got[0] != "a" || got[1] != "a" {
		t.Fatalf("Owned = %v, want [a a]", got)
	}
	if recs[1] != "b" {
		t.Fatalf("Owned changed its input: %v", recs)
	}
}
