package app

import (
	"testing"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// TestRerouteUnassigned fills the only owner's capacity, so the second lead
// is UNASSIGNED, then makes an owner available in each way that re-routes
// it, and checks who gets it and that its SLA clock starts at that moment.
func TestRerouteUnassigned(t *testing.T) {
	alice := &routingv1.Owner{OwnerId: "alice", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", Capacity: 1}
	tests := []struct {
		name  string
		act   func(t *testing.T, h *harness, first *routingv1.Assignment)
		owner string // who the waiting lead ends with; "" = still unassigned
	}{
		{
			name: "touch frees the slot",
			act: func(t *testing.T, h *harness, first *routingv1.Assignment) {
				if _, err := h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: first.GetAssignmentId(), TouchType: "contacted"}); err != nil {
					t.Fatal(err)
				}
			},
			owner: "alice",
		},
		{
			name: "capacity raised",
			act: func(t *testing.T, h *harness, _ *routingv1.Assignment) {
				o := &routingv1.Owner{OwnerId: "alice", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York", Capacity: 2}
				if _, err := h.client.UpsertOwner(ctxWith(adminKey), &routingv1.UpsertOwnerRequest{Owner: o}); err != nil {
					t.Fatal(err)
				}
			},
			owner: "alice",
		},
		{
			name: "new owner joins the pool",
			act: func(t *testing.T, h *harness, _ *routingv1.Assignment) {
				ctx := ctxWith(adminKey)
				// The owner alone is not in the pool yet: still waiting.
				if _, err := h.client.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{OwnerId: "bob", Team: routingv1.Team_TEAM_SDR, TimeZone: "America/New_York"}}); err != nil {
					t.Fatal(err)
				}
				if got := h.list(&routingv1.ListAssignmentsRequest{State: routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED}); len(got) != 1 {
					t.Fatalf("after upserting bob outside the pool: %q", summary(got))
				}
				if _, err := h.client.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{PoolId: "sdr", OwnerIds: []string{"alice", "bob"}}}); err != nil {
					t.Fatal(err)
				}
			},
			owner: "bob",
		},
		{
			name: "pause keeps the slot taken",
			act: func(t *testing.T, h *harness, first *routingv1.Assignment) {
				if _, err := h.client.PauseSla(ctxWith(writeKey), &routingv1.PauseSlaRequest{AssignmentId: first.GetAssignmentId()}); err != nil {
					t.Fatal(err)
				}
			},
			owner: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", ny(16, 9, 0))
			ctx := ctxWith(adminKey)
			if _, err := h.client.UpsertOwner(ctx, &routingv1.UpsertOwnerRequest{Owner: alice}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.client.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{PoolId: "sdr", OwnerIds: []string{"alice"}}}); err != nil {
				t.Fatal(err)
			}
			cfg := &routingv1.Config{FallbackPoolId: "sdr", Rules: []*routingv1.Rule{{Name: "sdr", Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "sdr"}}}
			if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: cfg}); err != nil {
				t.Fatal(err)
			}
			first := h.qualify("one@acme.com")
			waiting := h.qualify("two@acme.com")
			if first.GetOwnerId() != "alice" || waiting.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED || waiting.GetSla() != nil {
				t.Fatalf("before: %q", summary([]*routingv1.Assignment{first, waiting}))
			}
			h.clk.Set(ny(16, 11, 0))
			tt.act(t, h, first)
			got := h.assignment(waiting.GetAssignmentId())
			if got.GetOwnerId() != tt.owner {
				t.Fatalf("waiting lead: owner %q state %s, want owner %q", got.GetOwnerId(), got.GetState(), tt.owner)
			}
			if tt.owner == "" {
				return
			}
			if got.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN || got.GetDecision().GetRule() != "sdr" {
				t.Fatalf("re-routed: %v", got)
			}
			// MQL default: 8 business hours from 11:00 Monday.
			if due := got.GetSla().GetDueAt().AsTime(); !due.Equal(ny(17, 11, 0)) {
				t.Fatalf("SLA due %s, want %s", due, ny(17, 11, 0))
			}
			h.clk.Set(ny(16, 15, 0))
			h.fire()
			if ev := slaEvents(t, h.db, got.GetAssignmentId()); len(ev) != 1 || ev[0] != "warning_50:"+tt.owner {
				t.Fatalf("events of the re-routed clock: %v", ev)
			}
		})
	}
}
