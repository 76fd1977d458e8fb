package app

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// ingest applies one event, stamped at at, as the ingestion consumer does.
func (h *harness) ingest(id string, at time.Time, e *ingestionv1.Event) {
	h.t.Helper()
	e.Workspace, e.MessageId, e.Timestamp = "ws", id, timestamppb.New(at)
	rec := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: e}}
	h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{rec}) })
}

// TestPQLOverProductAggregates checks that PQL rules see pkg/domain/account's
// aggregate functions over the ingestion events routing keeps per account:
// a trial account that hit its activation event with 3+ active users fires
// one PQL, created at the time of the event that made the rule hold.
func TestPQLOverProductAggregates(t *testing.T) {
	tests := []struct {
		name   string
		events []*ingestionv1.Event
		// fireAt is the index of the event whose time the PQL carries, -1 for none.
		fireAt int
	}{
		{
			name: "activation then a third active user fires once",
			events: []*ingestionv1.Event{
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "activation_reached", UserId: "u1", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u2", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u3", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u4", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "activation_reached", UserId: "u4", AccountId: "acme"},
			},
			fireAt: 2,
		},
		{
			name: "three active users before activation fire at activation",
			events: []*ingestionv1.Event{
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u1", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_PAGE, Name: "home", UserId: "u2", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u3", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "activation_reached", UserId: "u3", AccountId: "acme"},
			},
			fireAt: 3,
		},
		{
			name: "two active users never fire",
			events: []*ingestionv1.Event{
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "activation_reached", UserId: "u1", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u2", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_viewed", UserId: "u1", AccountId: "acme"},
			},
			fireAt: -1,
		},
		{
			name: "events from the crm source are not product activity",
			events: []*ingestionv1.Event{
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "activation_reached", UserId: "u1", AccountId: "acme"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.note", UserId: "u2", AccountId: "acme", Source: "crm"},
				{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.note", UserId: "u3", AccountId: "acme", Source: "crm"},
			},
			fireAt: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := ny(16, 9, 0)
			h := newHarness(t, "", start.Add(time.Hour))
			h.setup(nil)
			cfg := &routingv1.Config{
				FallbackPoolId: "sdr",
				Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
				PqlRules: []*routingv1.PqlRule{{Name: "activated-trial",
					Condition: `has(account.plan) && account.plan == "trial" && has_event("activation_reached") && active_users("7d") >= 3`}},
			}
			if _, err := h.client.ApplyConfig(ctxWith(adminKey), &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
				t.Fatal(err)
			}
			h.ingest("g", start, &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme", Traits: st(t, map[string]any{"plan": "trial"})})
			for i, e := range tt.events {
				h.ingest(string(rune('a'+i)), start.Add(time.Duration(i+1)*time.Minute), e)
			}
			got := h.list(&routingv1.ListAssignmentsRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_PQL})
			if tt.fireAt < 0 {
				if len(got) != 0 {
					t.Fatalf("PQLs %s, want none", summary(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("PQLs %q, want exactly one", summary(got))
			}
			a := got[0]
			if a.GetLead().GetAttributes()["pql_rule"] != "activated-trial" || a.GetAccountId() != "acme" {
				t.Fatalf("PQL %v", a)
			}
			if want := start.Add(time.Duration(tt.fireAt+1) * time.Minute); !a.GetCreatedAt().AsTime().Equal(want) {
				t.Fatalf("PQL created at %s, want the triggering event's time %s", a.GetCreatedAt().AsTime(), want)
			}
		})
	}
}

// TestConsumerUsesEventTime applies an MQL an hour after it happened (a
// consumer catching up after downtime): the assignment and its SLA clock
// start at the event's time, so the warnings fall an hour earlier than if
// the clock had started at processing time.
func TestConsumerUsesEventTime(t *testing.T) {
	h := newHarness(t, "", ny(16, 11, 0))
	h.setup(escalating)
	h.ingest("m1", ny(16, 10, 0), &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "acme",
		Properties: st(t, map[string]any{"email": "pat@acme.com"})})
	as := h.list(&routingv1.ListAssignmentsRequest{})
	if len(as) != 1 {
		t.Fatalf("assignments %q", summary(as))
	}
	a := as[0]
	if !a.GetCreatedAt().AsTime().Equal(ny(16, 10, 0)) || !a.GetSla().GetDueAt().AsTime().Equal(ny(17, 10, 0)) {
		t.Fatalf("created %s due %s, want %s and %s", a.GetCreatedAt().AsTime(), a.GetSla().GetDueAt().AsTime(), ny(16, 10, 0), ny(17, 10, 0))
	}
	h.clk.Set(ny(16, 13, 59))
	h.fire()
	if got := strings.Join(slaEvents(t, h.db, a.GetAssignmentId()), " "); got != "" {
		t.Fatalf("events at 13:59: %q", got)
	}
	h.clk.Set(ny(16, 14, 0))
	h.fire()
	if got := strings.Join(slaEvents(t, h.db, a.GetAssignmentId()), " "); got != "warning_50:alice" {
		t.Fatalf("events at 14:00: %q, want the 50%% warning 4 business hours after 10:00", got)
	}
	// An event stamped in the future is clamped to now.
	h.ingest("m2", ny(20, 10, 0), &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql", AccountId: "beta",
		Properties: st(t, map[string]any{"email": "kim@beta.com"})})
	as = h.list(&routingv1.ListAssignmentsRequest{AccountId: "beta"})
	if len(as) != 1 || !as[0].GetCreatedAt().AsTime().Equal(ny(16, 14, 0)) {
		t.Fatalf("future-stamped MQL: %v", as)
	}
}

// TestPQLStatusGuard follows a rule that requires a lifecycle status, as
// the demo's do (`status == "trial" && ...`): events of an account in
// another status need not evaluate it, yet it fires once when the account
// enters trial with its condition met, and stops holding (the account's
// record forgets it) when the account becomes a customer.
func TestPQLStatusGuard(t *testing.T) {
	start := ny(16, 9, 0)
	h := newHarness(t, "", start.Add(time.Hour))
	h.setup(nil)
	cfg := &routingv1.Config{
		FallbackPoolId: "sdr",
		Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
		PqlRules:       []*routingv1.PqlRule{{Name: "trial-integration", Condition: `status == "trial" && integrations() >= 1`}},
	}
	if _, err := h.client.ApplyConfig(ctxWith(adminKey), &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	track := func(name string, props map[string]any) *ingestionv1.Event {
		return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: name, UserId: "u1", AccountId: "acme", Properties: st(t, props)}
	}
	steps := []struct {
		event   *ingestionv1.Event
		holding []string
		pqls    int
	}{
		{track("integration.connected", map[string]any{"integration": "slack"}), nil, 0},
		{track("report_created", nil), nil, 0},
		{track("trial_started", nil), []string{"trial-integration"}, 1},
		{track("report_created", nil), []string{"trial-integration"}, 1},
		{track("trial_converted", nil), nil, 1},
		{track("report_created", nil), nil, 1},
	}
	for i, s := range steps {
		at := start.Add(time.Duration(i+1) * time.Minute)
		h.ingest(fmt.Sprint("e", i), at, s.event)
		var holding []string
		err := h.db.View(func(btx *pstore.Tx) error {
			a, err := store.In(btx, "ws").Account("acme")
			holding = a.PQLHolding
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(holding, s.holding) {
			t.Fatalf("after %s: holding %q, want %q", s.event.GetEvent(), holding, s.holding)
		}
		got := h.list(&routingv1.ListAssignmentsRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_PQL})
		if len(got) != s.pqls {
			t.Fatalf("after %s: PQLs %q, want %d", s.event.GetEvent(), summary(got), s.pqls)
		}
		if len(got) == 1 && !got[0].GetCreatedAt().AsTime().Equal(start.Add(3*time.Minute)) {
			t.Fatalf("PQL created at %s, want the trial start's time", got[0].GetCreatedAt().AsTime())
		}
	}
}
