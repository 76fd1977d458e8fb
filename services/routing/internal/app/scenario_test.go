package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
)

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// ny is a local New York time on the week of Monday 2026-11-16.
func ny(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, newYork)
}

// setup loads two SDRs in a round-robin pool, a manager, and a config whose
// MQL policy (8 business hours) reassigns and notifies on breach.
func (h *harness) setup(policy *routingv1.SlaPolicy) {
	h.t.Helper()
	ctx := ctxWith(adminKey)
	for _, o := range []*routingv1.Owner{
		{OwnerId: "alice", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", ManagerId: "maria", Capacity: 100},
		{OwnerId: "bob", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", ManagerId: "maria", Capacity: 100},
		{OwnerId: "maria", Team: routingv1.Team_TEAM_MANAGER, TimeZone: "America/New_York"},
	} {
		if _, err := h.client.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: o}); err != nil {
			h.t.Fatalf("upsert owner: %v", err)
		}
	}
	if _, err := h.client.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{PoolId: "sdr", OwnerIds: []string{"alice", "bob"}, Strategy: routingv1.Strategy_STRATEGY_ROUND_ROBIN}}); err != nil {
		h.t.Fatalf("upsert pool: %v", err)
	}
	cfg := &routingv1.Config{
		FallbackPoolId: "sdr",
		Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
	}
	if policy != nil {
		cfg.SlaPolicies = []*routingv1.SlaPolicy{policy}
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
		h.t.Fatalf("apply config: %v", err)
	}
}

func (h *harness) qualify(email string) *routingv1.Assignment {
	h.t.Helper()
	r, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: email, AccountId: "acct-" + email}})
	if err != nil {
		h.t.Fatalf("qualify: %v", err)
	}
	return r.GetAssignment()
}

var escalating = &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(8 * time.Hour), ReassignOnBreach: true, NotifyManager: true}

// TestSLAScenarios drives SLA clocks with a manual clock: each step moves the
// clock, fires due timers and checks the assignment's events and state.
func TestSLAScenarios(t *testing.T) {
	type step struct {
		at     time.Time
		action string // "", "pause", "resume", "touch:<type>"
		events string // all SLA events of the assignment so far
		state  routingv1.AssignmentState
	}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, h *harness, a *routingv1.Assignment)
	}{
		{
			name: "warnings breach and escalation",
			steps: []step{
				{at: ny(16, 12, 59), events: "", state: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
				{at: ny(16, 13, 0), events: "warning_50:alice"},
				{at: ny(16, 15, 24), events: "warning_50:alice warning_80:alice"},
				// Bob gets a fresh 8h clock from 17:00: 13:00, 15:24, 17:00 the next day.
				{at: ny(16, 17, 0), events: "warning_50:alice warning_80:alice breach:alice escalation:alice>bob manager_notified:maria", state: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
				{at: ny(17, 12, 59), events: "warning_50:alice warning_80:alice breach:alice escalation:alice>bob manager_notified:maria", state: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
				{at: ny(17, 13, 0), events: "warning_50:alice warning_80:alice breach:alice escalation:alice>bob manager_notified:maria warning_50:bob"},
				{at: ny(17, 15, 24), events: "warning_50:alice warning_80:alice breach:alice escalation:alice>bob manager_notified:maria warning_50:bob warning_80:bob"},
				// Nobody is left in the pool: the escalation only notifies.
				{at: ny(17, 17, 0), events: "warning_50:alice warning_80:alice breach:alice escalation:alice>bob manager_notified:maria warning_50:bob warning_80:bob breach:bob escalation:bob manager_notified:maria", state: routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED},
				{at: ny(19, 17, 0), events: "warning_50:alice warning_80:alice breach:alice escalation:alice>bob manager_notified:maria warning_50:bob warning_80:bob breach:bob escalation:bob manager_notified:maria", state: routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED},
			},
			check: func(t *testing.T, h *harness, a *routingv1.Assignment) {
				if a.GetOwnerId() != "bob" || strings.Join(a.GetPreviousOwnerIds(), ",") != "alice" || !a.GetSla().GetBreached() {
					t.Fatalf("after escalation: %v", a)
				}
				if due := a.GetSla().GetDueAt().AsTime(); !due.Equal(ny(17, 17, 0)) {
					t.Fatalf("bob's clock due %s, want %s", due, ny(17, 17, 0))
				}
				if n := testutil.ToFloat64(h.svc.breaches.WithLabelValues("mql")); n != 2 {
					t.Fatalf("cairn_sla_breaches_total{type=mql} = %v, want 2", n)
				}
				load, err := h.client.ListOwnerLoad(ctxWith(readKey), &routingv1.ListOwnerLoadRequest{})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, o := range load.GetOwners() {
					got = append(got, fmt.Sprintf("%s:%d/%d", o.GetOwnerId(), o.GetOpen(), o.GetBreached()))
				}
				if strings.Join(got, " ") != "alice:0/0 bob:1/1 maria:0/0" {
					t.Fatalf("load after escalation (open/breached): %v", got)
				}
				rep, err := h.client.GetReport(ctxWith(readKey), &routingv1.GetReportRequest{})
				if err != nil {
					t.Fatal(err)
				}
				var rows []string
				for _, r := range rep.GetRows() {
					rows = append(rows, fmt.Sprintf("%s=%s n=%d breached=%d", r.GetGroupBy(), r.GetKey(), r.GetAssignments(), r.GetBreached()))
				}
				slices.Sort(rows)
				// The breach counts against alice and the type as well as bob.
				if want := "owner=alice n=1 breached=1 owner=bob n=1 breached=1 team=sdr n=2 breached=2 type=mql n=1 breached=1"; strings.Join(rows, " ") != want {
					t.Fatalf("report %q, want %q", strings.Join(rows, " "), want)
				}
			},
		},
		{
			name: "pause stops the clock and resume moves the deadline",
			steps: []step{
				{at: ny(16, 11, 0), action: "pause", state: routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED},
				{at: ny(20, 17, 0), events: "", state: routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED},
				{at: ny(23, 9, 0), action: "resume", state: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
				{at: ny(23, 11, 0), events: "warning_50:alice"},
				// 15:00 is past the 80% warning (12:36) and the breach (14:00):
				// one breach record passes the warning, and escalates once.
				{at: ny(23, 15, 0), events: "warning_50:alice breach[warning_80]:alice escalation:alice>bob manager_notified:maria", state: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN},
			},
		},
		{
			name: "touch meets the SLA and cancels timers",
			steps: []step{
				{at: ny(16, 14, 0), action: "touch:contacted", events: "warning_50:alice met:alice", state: routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED},
				{at: ny(17, 17, 0), events: "warning_50:alice met:alice", state: routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED},
			},
			check: func(t *testing.T, h *harness, a *routingv1.Assignment) {
				if a.GetSla().GetMetAt() == nil || a.GetFirstTouchAt() == nil || a.GetSla().GetUsed().AsDuration() != 5*time.Hour {
					t.Fatalf("after touch: %v", a.GetSla())
				}
			},
		},
		{
			name: "disqualification closes",
			steps: []step{
				{at: ny(16, 10, 0), action: "touch:disqualified", events: "met:alice", state: routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED},
				{at: ny(17, 17, 0), events: "met:alice", state: routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 9, 0))
			h.setup(escalating)
			a := h.qualify("lead@acme.com")
			if a.GetOwnerId() != "alice" || a.GetSla().GetDueAt().AsTime() != ny(16, 17, 0).UTC() {
				t.Fatalf("qualified: owner %s due %s", a.GetOwnerId(), a.GetSla().GetDueAt().AsTime())
			}
			for i, st := range tt.steps {
				h.clk.Set(st.at)
				var err error
				switch {
				case st.action == "pause":
					_, err = h.client.PauseSla(ctxWith(writeKey), &routingv1.PauseSlaRequest{AssignmentId: a.GetAssignmentId(), Reason: "waiting on customer"})
				case st.action == "resume":
					_, err = h.client.ResumeSla(ctxWith(writeKey), &routingv1.ResumeSlaRequest{AssignmentId: a.GetAssignmentId()})
				case strings.HasPrefix(st.action, "touch:"):
					h.fire()
					_, err = h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: a.GetAssignmentId(), TouchType: strings.TrimPrefix(st.action, "touch:")})
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", i, st.action, err)
				}
				h.fire()
				if st.action == "" || st.events != "" {
					if got := strings.Join(slaEvents(t, h.db, a.GetAssignmentId()), " "); got != st.events {
						t.Fatalf("step %d at %s: events %q, want %q", i, st.at, got, st.events)
					}
				}
				if st.state != 0 {
					if got := h.assignment(a.GetAssignmentId()).GetState(); got != st.state {
						t.Fatalf("step %d: state %s, want %s", i, got, st.state)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, h, h.assignment(a.GetAssignmentId()))
			}
		})
	}
}

// TestRestartFiresOverdueOnce closes the service with timers pending, reopens
// the same file after their due times and checks every timer fires once.
func TestRestartFiresOverdueOnce(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
	var ids []string
	for i := range 20 {
		ids = append(ids, h.qualify(string(rune('a'+i))+"@acme.com").GetAssignmentId())
	}
	path := h.path
	h.stop()

	h2 := newHarness(t, path, ny(18, 9, 0))
	// All three timers of each clock are overdue: they fire in one step, as
	// one breach record that passed both warnings.
	if n := h2.fire(); n != 20 {
		t.Fatalf("fired %d timers after restart, want 20", n)
	}
	if n := h2.fire(); n != 0 {
		t.Fatalf("fired %d more timers on the second pass", n)
	}
	for _, id := range ids {
		got := strings.Join(slaEvents(t, h2.db, id), " ")
		if got != "breach[warning_50,warning_80]:alice" && got != "breach[warning_50,warning_80]:bob" {
			t.Fatalf("%s: events %q", id, got)
		}
		a := h2.assignment(id)
		// Timers fire at their own due time, not at restart time.
		if a.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED {
			t.Fatalf("%s: state %s", id, a.GetState())
		}
	}
}

// TestReassignedClockSurvivesRestart breaches, reassigns, closes the store
// and reopens it after the new owner's clock ran out: the new owner's
// warnings and breach fire once, at their own due times.
func TestReassignedClockSurvivesRestart(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(escalating)
	a := h.qualify("lead@acme.com")
	h.clk.Set(ny(16, 17, 0))
	h.fire()
	path := h.path
	h.stop()

	h2 := newHarness(t, path, ny(18, 9, 0))
	h2.fire()
	if n := h2.fire(); n != 0 {
		t.Fatalf("fired %d timers on the second pass", n)
	}
	var got []string
	for _, r := range records(t, h2.db) {
		if e := r.GetSlaEvent(); e != nil && e.GetOwnerId() == "bob" {
			var passed []string
			for _, p := range e.GetPassed() {
				passed = append(passed, p.GetKind()+"@"+p.GetAt().AsTime().In(newYork).Format("02 15:04"))
			}
			got = append(got, e.GetKind()+"@"+e.GetAt().AsTime().In(newYork).Format("02 15:04")+"["+strings.Join(passed, " ")+"]")
		}
	}
	// Bob's overdue clock fires as one breach, which names the warnings it
	// passed with their own due times, and escalates once.
	want := "breach@17 17:00[warning_50@17 13:00 warning_80@17 15:24] escalation@17 17:00[]"
	if strings.Join(got, " ") != want {
		t.Fatalf("bob's events %q, want %q", strings.Join(got, " "), want)
	}
	if st := h2.assignment(a.GetAssignmentId()).GetState(); st != routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED {
		t.Fatalf("state %s", st)
	}
}

// TestTimerLoop runs the real loop on a manual clock: a new assignment wakes
// it, and advancing the clock to the due time fires the breach.
func TestTimerLoop(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.RunTimers(ctx) }()
	a := h.qualify("x@acme.com")
	waitFor(t, func() bool { return h.clk.Waiters() > 0 })
	// 09:30 is the 50% warning; then 09:48 the 80% one; 10:00 the breach.
	for _, at := range []time.Time{ny(16, 9, 30), ny(16, 9, 48), ny(16, 10, 0)} {
		want := len(slaEvents(t, h.db, a.GetAssignmentId())) + 1
		h.clk.Set(at)
		waitFor(t, func() bool { return len(slaEvents(t, h.db, a.GetAssignmentId())) == want })
	}
	if got := strings.Join(slaEvents(t, h.db, a.GetAssignmentId()), " "); got != "warning_50:alice warning_80:alice breach:alice" {
		t.Fatalf("events %q", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitFor polls a condition that another goroutine makes true; it bounds
// the wait so that a bug fails the test instead of hanging it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTimerLoopWakesOnConsumerArm checks that a timer armed by a consumer
// (inside the consumer's own transaction, not through Commit/Update) wakes a
// timer loop that went to sleep with nothing pending.
func TestTimerLoopWakesOnConsumerArm(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.RunTimers(ctx) }()
	// Let the loop consume the wake-up left by setup, so that it is asleep
	// with nothing pending when the consumer arms the first timer.
	waitFor(t, func() bool { return len(h.svc.wake) == 0 })
	mql := &ingestionv1.LogRecord{Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
		Workspace: "ws", MessageId: "m1", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "crm.mql",
		Timestamp: timestamppb.New(ny(16, 9, 0)), Properties: st(t, map[string]any{"email": "x@acme.com"}),
	}}}
	h.apply(func(tx *pstore.Tx) error { return h.svc.ApplyIngestion(tx, 0, []*ingestionv1.LogRecord{mql}) })
	as := h.list(&routingv1.ListAssignmentsRequest{})
	if len(as) != 1 {
		t.Fatalf("%d assignments, want 1", len(as))
	}
	waitFor(t, func() bool { return h.clk.Waiters() > 0 })
	h.clk.Set(ny(16, 10, 0))
	waitFor(t, func() bool {
		return strings.Join(slaEvents(t, h.db, as[0].GetAssignmentId()), " ") == "breach[warning_50,warning_80]:alice"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
