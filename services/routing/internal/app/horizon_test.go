package app

import (
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// TestTimersWaitForIngestionBacklog checks that SLA timers are judged in
// event time while the ingestion consumer has a backlog: a touch still in
// the log meets the deadline it met in fact, even when the wall clock is
// long past it, and deadlines fire once the backlog's events pass them or
// the consumer catches up.
func TestTimersWaitForIngestionBacklog(t *testing.T) {
	policy := &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(8 * time.Hour)}
	behind := stream.Lag{Partition: 0, Cursor: 1, Head: 9, Known: true}
	caughtUp := stream.Lag{Partition: 0, Cursor: 9, Head: 9, Known: true}
	unknown := stream.Lag{Partition: 0}
	type step struct {
		lag    *stream.Lag // the consumer's position from now on; nil: no consumer
		event  string      // an ingestion event applied, at time at
		at     time.Time
		events string // the assignment's SLA events after firing
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"touch in the backlog meets the deadline", []step{
			{lag: &behind, events: ""},
			{lag: &behind, event: "crm.contacted", at: ny(16, 11, 0), events: "met:alice"},
			{lag: &caughtUp, events: "met:alice"},
		}},
		{"late touch in the backlog finds the deadline passed", []step{
			{lag: &behind, event: "crm.contacted", at: ny(16, 18, 0), events: "breach[warning_50,warning_80]:alice met_late:alice"},
			{lag: &caughtUp, events: "breach[warning_50,warning_80]:alice met_late:alice"},
		}},
		{"touch from before the deadline heard after the breach meets on time", []step{
			{lag: &caughtUp, events: "breach[warning_50,warning_80]:alice"},
			{lag: &caughtUp, event: "crm.contacted", at: ny(16, 11, 0), events: "breach[warning_50,warning_80]:alice met:alice"},
		}},
		{"backlog events passing the deadline fire it", []step{
			{lag: &behind, event: "page_viewed", at: ny(16, 14, 0), events: "warning_50:alice"},
			{lag: &behind, event: "page_viewed", at: ny(16, 18, 0), events: "warning_50:alice breach[warning_80]:alice"},
		}},
		{"caught up fires on the clock", []step{
			{lag: &behind, events: ""},
			{lag: &caughtUp, events: "breach[warning_50,warning_80]:alice"},
		}},
		{"an upstream not heard from yet holds timers", []step{
			{lag: &unknown, events: ""},
			{lag: &caughtUp, events: "breach[warning_50,warning_80]:alice"},
		}},
		{"without a consumer timers follow the clock", []step{
			{events: "breach[warning_50,warning_80]:alice"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 9, 0))
			h.setup(policy)
			hz := &stepHorizon{}
			props, _ := structpb.NewStruct(map[string]any{"email": "lee@acme.com"})
			mql := &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", UserId: "lee", AccountId: "acme", Properties: props}
			if tt.steps[0].lag != nil {
				hz.set(tt.steps[0].lag, time.Time{})
				h.svc.SetIngestionHorizon(hz)
			}
			h.ingest("mql", ny(16, 9, 0), mql)
			hz.set(hz.lagNow(), ny(16, 9, 0))
			// The routing service catches up two days later.
			h.clk.Set(ny(18, 9, 0))
			as := h.list(&routingv1.ListAssignmentsRequest{})
			if len(as) != 1 {
				t.Fatalf("assignments = %v", as)
			}
			id := as[0].GetAssignmentId()
			for i, st := range tt.steps {
				hz.set(st.lag, time.Time{})
				if st.event != "" {
					p, _ := structpb.NewStruct(map[string]any{"email": "lee@acme.com"})
					h.ingest(st.event+"-"+string(rune('a'+i)), st.at, &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: st.event, UserId: "lee", AccountId: "acme", Properties: p})
					hz.set(st.lag, st.at)
				}
				h.fire()
				if got := strings.Join(slaEvents(t, h.db, id), " "); got != st.events {
					t.Fatalf("step %d: events %q, want %q", i, got, st.events)
				}
			}
			// Met on time is met on time, whatever routing believed before.
			if last := tt.steps[len(tt.steps)-1].events; strings.HasSuffix(last, " met:alice") || last == "met:alice" {
				a := h.list(&routingv1.ListAssignmentsRequest{})[0]
				if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED || a.GetSla().GetBreached() || a.GetSla().GetMetAt() == nil {
					t.Fatalf("met on time: state %s sla %v", a.GetState(), a.GetSla())
				}
			}
		})
	}
}

// stepHorizon is the ingestion consumer's horizon as the test steps set it:
// its position (lag) and the latest event time applied (the watermark,
// which only moves forward; zero until an event is applied with a lag
// known).
type stepHorizon struct {
	mu   sync.Mutex
	lag  *stream.Lag
	mark time.Time
}

func (h *stepHorizon) set(lag *stream.Lag, applied time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lag = lag
	if applied.After(h.mark) {
		h.mark = applied
	}
}

func (h *stepHorizon) lagNow() *stream.Lag {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lag
}

func (h *stepHorizon) Horizon() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.lag == nil || h.lag.CaughtUp():
		return time.Time{}, false
	case !h.lag.Known:
		return time.Time{}, true
	}
	return h.mark, true
}

func (h *stepHorizon) Changed() <-chan struct{} { return nil }
