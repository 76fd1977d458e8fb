package app

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// TestReassign moves assignments by hand: the new owner gets a fresh clock
// on their hours, the load counters follow, the change is in the log, and
// the reports judge the previous owner only when their clock had breached.
func TestReassign(t *testing.T) {
	policy := &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(8 * time.Hour)}
	tests := []struct {
		name string
		// at is when the reassignment happens (due timers fire first); the
		// assignment is made Monday 10:00 for alice, due Tuesday 10:00.
		at           time.Time
		wantBreached bool
		wantDue      time.Time
		// alice's row of the owner report: assignments, breached untouched.
		wantAliceRow []int64
	}{
		{"open", ny(16, 11, 0), false, ny(17, 11, 0), nil},
		// The breach is due at 10:00 and the timer loop has not run: it
		// fires before the move, which does not erase it.
		{"breached, not yet fired", ny(17, 11, 0), true, ny(18, 11, 0), []int64{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 10, 0))
			h.setup(policy)
			a := h.qualify("a@acme.com")
			if a.GetOwnerId() != "alice" {
				t.Fatalf("routed to %q, want alice", a.GetOwnerId())
			}
			h.clk.Set(tt.at)
			r, err := h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{AssignmentId: a.GetAssignmentId(), OwnerId: "bob", Reason: "alice is on leave"})
			if err != nil {
				t.Fatalf("reassign: %v", err)
			}
			got := r.GetAssignment()
			if got.GetOwnerId() != "bob" || got.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN || strings.Join(got.GetPreviousOwnerIds(), ",") != "alice" {
				t.Fatalf("owner %q state %s previous %v, want bob OPEN [alice]", got.GetOwnerId(), got.GetState(), got.GetPreviousOwnerIds())
			}
			if due := got.GetSla().GetDueAt().AsTime(); !due.Equal(tt.wantDue) || got.GetSla().GetBreached() {
				t.Fatalf("new clock due %v breached %v, want %v and not breached", due.In(newYork), got.GetSla().GetBreached(), tt.wantDue)
			}
			if rs := got.GetReassignments(); len(rs) != 1 || rs[0].GetFromOwnerId() != "alice" || rs[0].GetToOwnerId() != "bob" ||
				rs[0].GetBreached() != tt.wantBreached || rs[0].GetReason() != "alice is on leave" || !rs[0].GetAt().AsTime().Equal(tt.at) {
				t.Fatalf("reassignments %v", rs)
			}
			// Stored as returned, and the last record of the log.
			if stored := h.assignment(a.GetAssignmentId()); stored.GetOwnerId() != "bob" {
				t.Fatalf("stored owner %q", stored.GetOwnerId())
			}
			recs := records(t, h.db)
			if last := recs[len(recs)-1].GetAssignment(); last.GetOwnerId() != "bob" || len(last.GetReassignments()) != 1 {
				t.Fatalf("last log record %v, want the reassigned assignment", recs[len(recs)-1])
			}
			load, err := h.client.ListOwnerLoad(ctxWith(readKey), &routingv1.ListOwnerLoadRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range load.GetOwners() {
				want := map[string]int32{"alice": 0, "bob": 1}[o.GetOwnerId()]
				if o.GetOpen() != want || o.GetBreached() != 0 {
					t.Errorf("load of %s: open %d breached %d, want %d, 0", o.GetOwnerId(), o.GetOpen(), o.GetBreached(), want)
				}
			}
			// The new clock fires for bob.
			h.clk.Set(tt.wantDue.Add(time.Minute))
			h.fire()
			if b := h.assignment(a.GetAssignmentId()); b.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED || b.GetOwnerId() != "bob" {
				t.Fatalf("after bob's due time: %s owned by %s", b.GetState(), b.GetOwnerId())
			}
			rep, err := h.client.GetReport(ctxWith(readKey), &routingv1.GetReportRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var alice []int64
			for _, row := range rep.GetRows() {
				if row.GetGroupBy() == "owner" && row.GetKey() == "alice" {
					alice = []int64{row.GetAssignments(), row.GetBreachedUntouched()}
				}
				if row.GetGroupBy() == "type" && row.GetBreachedUntouched() != 1 {
					t.Errorf("type row counts %d breaches, want 1 (an assignment adds at most one)", row.GetBreachedUntouched())
				}
			}
			if len(alice) != len(tt.wantAliceRow) || (alice != nil && (alice[0] != tt.wantAliceRow[0] || alice[1] != tt.wantAliceRow[1])) {
				t.Fatalf("alice's report row %v, want %v", alice, tt.wantAliceRow)
			}
		})
	}
}

// TestReassignRefused checks the refusals, each naming what is wrong.
func TestReassignRefused(t *testing.T) {
	policy := &routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(8 * time.Hour)}
	tests := []struct {
		name    string
		prepare func(h *harness, id string)
		owner   string
		code    codes.Code
		msg     string
	}{
		{"same owner", nil, "alice", codes.InvalidArgument, "owner_id"},
		{"unknown owner", nil, "ghost", codes.NotFound, "owner_id"},
		{"closed", func(h *harness, id string) {
			if _, err := h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: id, TouchType: "disqualified"}); err != nil {
				t.Fatal(err)
			}
		}, "bob", codes.FailedPrecondition, "CLOSED"},
		{"touched", func(h *harness, id string) {
			if _, err := h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: id, TouchType: "meeting_booked"}); err != nil {
				t.Fatal(err)
			}
		}, "bob", codes.FailedPrecondition, "TOUCHED"},
		{"paused", func(h *harness, id string) {
			if _, err := h.client.PauseSla(ctxWith(writeKey), &routingv1.PauseSlaRequest{AssignmentId: id}); err != nil {
				t.Fatal(err)
			}
		}, "bob", codes.FailedPrecondition, "PAUSED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 10, 0))
			h.setup(policy)
			a := h.qualify("a@acme.com")
			if tt.prepare != nil {
				tt.prepare(h, a.GetAssignmentId())
			}
			before := len(records(t, h.db))
			_, err := h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{AssignmentId: a.GetAssignmentId(), OwnerId: tt.owner})
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("got %v, want %s containing %q", err, tt.code, tt.msg)
			}
			if after := len(records(t, h.db)); after != before {
				t.Fatalf("a refused reassignment appended %d log records", after-before)
			}
		})
	}
}
