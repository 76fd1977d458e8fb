package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// TestPreparedFiringMatchesInTransaction checks that timers prepared outside
// the write transaction fire exactly as fireTx would, when the state they were
// prepared from changes before the batch commits: a timer disarmed by a touch
// or a pause does not fire, a changed owner calendar or config sends the
// timers to fireTx, and the rest are written as prepared. A reference service
// sees the same changes first and fires sequentially; both must produce the
// same log records and assignments.
func TestPreparedFiringMatchesInTransaction(t *testing.T) {
	type change func(h *harness, ids []string)
	// A meeting meets the SLA and disarms the clock; a contact only records
	// the first touch and leaves the timer pending.
	touch := func(i int, kind string) change {
		return func(h *harness, ids []string) {
			if _, err := h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: ids[i], TouchType: kind}); err != nil {
				t.Fatalf("touch: %v", err)
			}
		}
	}
	pause := func(i int) change {
		return func(h *harness, ids []string) {
			if _, err := h.client.PauseSla(ctxWith(writeKey), &routingv1.PauseSlaRequest{AssignmentId: ids[i]}); err != nil {
				t.Fatalf("pause: %v", err)
			}
		}
	}
	resume := func(i int) change {
		return func(h *harness, ids []string) {
			if _, err := h.client.ResumeSla(ctxWith(writeKey), &routingv1.ResumeSlaRequest{AssignmentId: ids[i]}); err != nil {
				t.Fatalf("resume: %v", err)
			}
		}
	}
	// Bob's short days move his warning_80 from 09:48 to the next morning.
	bobWorksMornings := func(h *harness, _ []string) {
		o := &routingv1.Owner{OwnerId: "bob", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", ManagerId: "maria", Capacity: 100}
		for d := int32(1); d <= 5; d++ {
			o.WorkingHours = append(o.WorkingHours, &routingv1.WorkingHours{Weekday: d, Start: "09:00", End: "09:40"})
		}
		if _, err := h.client.UpsertOwner(ctxWith(adminKey), &routingv1.UpsertOwnerRequest{Owner: o}); err != nil {
			t.Fatalf("upsert owner: %v", err)
		}
	}
	escalate := func(h *harness, _ []string) {
		cfg := &routingv1.Config{
			FallbackPoolId: "sdr",
			Rules:          []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}},
			SlaPolicies: []*routingv1.SlaPolicy{{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour),
				SatisfiedBy: []string{"meeting_booked"}, ReassignOnBreach: true, NotifyManager: true}},
		}
		if _, err := h.client.ApplyConfig(ctxWith(adminKey), &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
			t.Fatalf("apply config: %v", err)
		}
	}
	// Clocks of one business hour from 09:00: the warnings are due at 09:30
	// and 09:48 (the breach is re-armed for 10:00), the breach at 10:00.
	rounds := []struct {
		at     time.Time
		change []change
	}{
		{ny(16, 9, 50), []change{touch(0, "meeting_booked"), pause(1), bobWorksMornings}},
		{ny(16, 11, 0), []change{touch(2, "contacted"), resume(1)}},
		{ny(17, 12, 0), []change{escalate}},
	}
	open := func() (*harness, []string) {
		h := newHarness(t, "", ny(16, 9, 0))
		h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour), SatisfiedBy: []string{"meeting_booked"}})
		var ids []string
		for i := range 12 {
			ids = append(ids, h.qualify(fmt.Sprintf("l%d@acme.com", i)).GetAssignmentId())
		}
		return h, ids
	}
	// Round 3 fires the resumed clock's breach after the config changed to
	// escalate.
	h, ids := open()
	ref, refIDs := open()
	for r, round := range rounds {
		h.clk.Set(round.at)
		ref.clk.Set(round.at)
		pb := h.svc.prepare(nil, h.svc.clk.Now())
		if pb.err != nil {
			t.Fatal(pb.err)
		}
		for _, c := range round.change {
			c(h, ids)
			c(ref, refIDs)
		}
		if _, err := h.svc.writePlans(pb); err != nil {
			t.Fatalf("round %d: write plans: %v", r, err)
		}
		h.fire()
		ref.fire()
	}
	got := sameRecords(t, records(t, h.db), records(t, ref.db))
	kinds := map[string]int{}
	for _, r := range got {
		if e := r.GetSlaEvent(); e != nil {
			kinds[e.GetKind()]++
		}
	}
	// Every path was taken: fast warnings and breaches, disarmed timers
	// skipped, escalations through fireTx.
	for _, k := range []string{"warning_50", "warning_80", "breach", "escalation", "manager_notified", "met"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event in %v", k, kinds)
		}
	}
	for i := range ids {
		if a, b := h.assignment(ids[i]), ref.assignment(refIDs[i]); !proto.Equal(a, b) {
			t.Fatalf("assignment %s:\n got %v\nwant %v", ids[i], a, b)
		}
	}
}

// TestFireDuePipelinedBatches fires more timers than one batch holds, so
// batches are prepared while earlier ones commit, and checks each fires once.
func TestFireDuePipelinedBatches(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
	h.svc.batch = 7
	var ids []string
	for i := range 50 {
		ids = append(ids, h.qualify(fmt.Sprintf("l%d@acme.com", i)).GetAssignmentId())
	}
	h.clk.Set(ny(17, 9, 0))
	n, err := h.svc.FireDue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Fatalf("fired %d, want 50", n)
	}
	if n := h.fire(); n != 0 {
		t.Fatalf("fired %d more on the second pass", n)
	}
	for _, id := range ids {
		if got := strings.Join(slaEvents(t, h.db, id), " "); got != "breach[warning_50,warning_80]:alice" && got != "breach[warning_50,warning_80]:bob" {
			t.Fatalf("%s: events %q, want one breach that passed both warnings", id, got)
		}
		if st := h.assignment(id).GetState(); st != routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED {
			t.Fatalf("%s: state %s", id, st)
		}
	}
}

// TestOrphanTimerFiresInOrder plants a second pending timer for an
// assignment whose armed pointer names another one (the store never makes
// such a timer; the check guards against it): the pipelined firing must
// still match firing one timer at a time in the transaction.
func TestOrphanTimerFiresInOrder(t *testing.T) {
	open := func() (*harness, []string) {
		h := newHarness(t, "", ny(16, 9, 0))
		h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
		var ids []string
		for i := range 4 {
			ids = append(ids, h.qualify(fmt.Sprintf("l%d@acme.com", i)).GetAssignmentId())
		}
		err := h.db.Update(func(btx *pstore.Tx) error {
			// Due before the armed warning_50 (09:30) of ids[1].
			b, err := btx.Bucket("timers")
			if err != nil {
				return err
			}
			return b.Put(store.TimerKey(ny(16, 9, 10), "ws", ids[1]), []byte("warning_80"))
		})
		if err != nil {
			t.Fatal(err)
		}
		h.clk.Set(ny(16, 9, 50))
		return h, ids
	}
	h, ids := open()
	ref, _ := open()
	if n := h.fire(); n != 5 {
		t.Fatalf("fired %d, want 5", n)
	}
	for {
		n, err := ref.svc.fireBatch(ref.svc.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	sameRecords(t, records(t, h.db), records(t, ref.db))
	if a, b := h.assignment(ids[1]), ref.assignment(ids[1]); !proto.Equal(a, b) {
		t.Fatalf("assignment:\n got %v\nwant %v", a, b)
	}
}

// sameRecords checks that two routing logs hold the same records for each
// assignment in the same order, and returns got. Records of different
// assignments may interleave differently: a timer armed already due while
// a batch commits fires in the pipeline or in the pass after it, depending
// on when the next batch was read.
func sameRecords(t *testing.T, got, want []*routingv1.LogRecord) []*routingv1.LogRecord {
	t.Helper()
	byAssignment := func(recs []*routingv1.LogRecord) map[string][]*routingv1.LogRecord {
		m := map[string][]*routingv1.LogRecord{}
		for _, r := range recs {
			id := r.GetSlaEvent().GetAssignmentId() + r.GetAssignment().GetAssignmentId()
			m[id] = append(m[id], r)
		}
		return m
	}
	if len(got) != len(want) {
		t.Fatalf("%d log records, want %d", len(got), len(want))
	}
	g, w := byAssignment(got), byAssignment(want)
	for id, recs := range w {
		if len(g[id]) != len(recs) {
			t.Fatalf("%s: %d log records, want %d", id, len(g[id]), len(recs))
		}
		for i := range recs {
			if !proto.Equal(g[id][i], recs[i]) {
				t.Fatalf("%s record %d:\n got %v\nwant %v", id, i, g[id][i], recs[i])
			}
		}
	}
	return got
}

// TestFireDueWithNothingDueDoesNotWrite checks that waking the timer loop
// (after every commit that may arm a timer) costs no write transaction, and
// so no fsync in the way of group commits, when no timer is due.
func TestFireDueWithNothingDueDoesNotWrite(t *testing.T) {
	h := newHarness(t, "", ny(16, 9, 0))
	h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
	h.qualify("pat@acme.com")
	// Every write transaction made through pkg/store, Update or Commit, is
	// observed by its commit latency histogram.
	writes := func() uint64 {
		reg := prometheus.NewRegistry()
		reg.MustRegister(h.db.Collector("routing"))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, mf := range mfs {
			if mf.GetName() == "cairn_bbolt_commit_seconds" {
				for _, m := range mf.GetMetric() {
					n += m.GetHistogram().GetSampleCount()
				}
			}
		}
		return n
	}
	before := writes()
	if before == 0 {
		t.Fatal("no write transaction counted before FireDue: the count proves nothing")
	}
	if n := h.fire(); n != 0 {
		t.Fatalf("fired %d", n)
	}
	if after := writes(); after != before {
		t.Fatalf("write transactions %d -> %d: FireDue wrote with nothing due", before, after)
	}
	h.clk.Set(ny(16, 9, 30))
	if n := h.fire(); n != 1 {
		t.Fatalf("fired %d at the warning's due time, want 1", n)
	}
}

// TestLateFiring checks the routing log's record of SLA thresholds. On time
// each threshold has its own record; a timer that fires late, past later
// thresholds of the same clock (after downtime), publishes one record of the
// latest threshold reached, which lists the ones it passed with their own
// due times. A breach that does not escalate carries the breached
// assignment instead of a separate assignment record; one that escalates
// does so once, followed by the assignment record. The pipelined path and
// firing inside one transaction (fireBatch) must agree.
func TestLateFiring(t *testing.T) {
	plain := &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(8 * time.Hour)}
	// Created Monday 09:00 New York: warnings due 13:00 and 15:24, breach 17:00.
	tests := []struct {
		name     string
		policy   *routingv1.SlaPolicy
		fireAt   []time.Time
		events   string
		breached int
		// assignment records after the creation's, as "state/owner"
		assignments string
	}{
		{"on time: one record per threshold", plain, []time.Time{ny(16, 13, 0), ny(16, 15, 24), ny(16, 17, 0)},
			"warning_50@13:00 warning_80@15:24 breach@17:00+BREACHED", 1, ""},
		{"late past the 80% warning", plain, []time.Time{ny(16, 16, 0)},
			"warning_80@15:24[warning_50@13:00]", 0, ""},
		{"late past the 80% warning, then the breach on time", plain, []time.Time{ny(16, 16, 0), ny(16, 17, 0)},
			"warning_80@15:24[warning_50@13:00] breach@17:00+BREACHED", 1, ""},
		{"late past the breach", plain, []time.Time{ny(18, 9, 0)},
			"breach@17:00[warning_50@13:00 warning_80@15:24]+BREACHED", 1, ""},
		{"50% on time, then late past the breach", plain, []time.Time{ny(16, 13, 0), ny(17, 12, 0)},
			"warning_50@13:00 breach@17:00[warning_80@15:24]+BREACHED", 1, ""},
		{"late past an escalating breach", escalating, []time.Time{ny(16, 18, 0)},
			"breach@17:00[warning_50@13:00 warning_80@15:24] escalation@17:00 manager_notified@17:00", 1, "ASSIGNMENT_STATE_OPEN/bob"},
	}
	paths := []struct {
		name string
		fire func(h *harness) int
	}{
		{"pipelined", (*harness).fire},
		{"in transaction", func(h *harness) int {
			n, err := h.svc.fireBatch(h.svc.fireHorizon())
			if err != nil {
				t.Fatal(err)
			}
			return n
		}},
	}
	for _, tt := range tests {
		for _, path := range paths {
			t.Run(tt.name+"/"+path.name, func(t *testing.T) {
				h := newHarness(t, "", ny(16, 9, 0))
				h.setup(tt.policy)
				id := h.qualify("lead@acme.com").GetAssignmentId()
				for _, at := range tt.fireAt {
					h.clk.Set(at)
					path.fire(h)
				}
				var events, assignments []string
				for _, r := range records(t, h.db) {
					if a := r.GetAssignment(); a.GetAssignmentId() == id {
						assignments = append(assignments, a.GetState().String()+"/"+a.GetOwnerId())
					}
					e := r.GetSlaEvent()
					if e.GetAssignmentId() != id || e.GetOwnerId() == "bob" {
						continue
					}
					s := e.GetKind() + "@" + e.GetAt().AsTime().In(newYork).Format("15:04")
					var passed []string
					for _, p := range e.GetPassed() {
						passed = append(passed, p.GetKind()+"@"+p.GetAt().AsTime().In(newYork).Format("15:04"))
					}
					if len(passed) > 0 {
						s += "[" + strings.Join(passed, " ") + "]"
					}
					if a := e.GetAssignment(); a != nil {
						if a.GetAssignmentId() != id || !a.GetSla().GetBreached() {
							t.Fatalf("%s carries %v", e.GetKind(), a)
						}
						s += "+" + strings.TrimPrefix(a.GetState().String(), "ASSIGNMENT_STATE_")
					}
					events = append(events, s)
				}
				if got := strings.Join(events, " "); got != tt.events {
					t.Errorf("events %q\n          want %q", got, tt.events)
				}
				// The first assignment record is the creation's.
				if got := strings.Join(assignments[1:], " "); got != tt.assignments {
					t.Errorf("assignment records after creation %q, want %q", got, tt.assignments)
				}
				if n := testutil.ToFloat64(h.svc.breaches.WithLabelValues("mql")); n != float64(tt.breached) {
					t.Errorf("cairn_sla_breaches_total = %v, want %d", n, tt.breached)
				}
				if want := tt.breached == 1 && tt.policy == plain; want != (h.assignment(id).GetState() == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED) {
					t.Errorf("state %s", h.assignment(id).GetState())
				}
			})
		}
	}
}
