package cli

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
)

// cannedAssignment is as-1 of the fake routing service: open, owned by
// alice, due at t0+4h.
func cannedAssignment() *routingv1.Assignment {
	return &routingv1.Assignment{
		AssignmentId: "as-1", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, AccountId: "acme", OwnerId: "alice", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN,
		Decision: &routingv1.Decision{Rule: "known-account"}, CreatedAt: timestamppb.New(t0),
		Sla: &routingv1.SlaState{Policy: "mql", Allowed: durationpb.New(4 * time.Hour), Used: durationpb.New(time.Hour), DueAt: timestamppb.New(t0.Add(4 * time.Hour))},
	}
}

// Reassign refuses as the routing service does: unknown assignment or
// owner, the same owner.
func (f fakeRouting) Reassign(ctx context.Context, req *routingv1.ReassignRequest) (*routingv1.ReassignResponse, error) {
	if err := f.record(ctx, "Reassign "+req.GetAssignmentId()+">"+req.GetOwnerId()+" "+req.GetReason()); err != nil {
		return nil, err
	}
	a := cannedAssignment()
	switch {
	case req.GetAssignmentId() != a.GetAssignmentId():
		return nil, apierr.Status(nil, "Reassign", apierr.NotFound("assignment %q not found", req.GetAssignmentId()))
	case req.GetOwnerId() == a.GetOwnerId():
		return nil, apierr.Status(nil, "Reassign", apierr.Field("owner_id", "assignment %q is already owned by %q", a.GetAssignmentId(), a.GetOwnerId()))
	case req.GetOwnerId() != "bob":
		return nil, apierr.Status(nil, "Reassign", apierr.NotFound("owner_id: no owner %q in this workspace", req.GetOwnerId()))
	}
	a.PreviousOwnerIds = []string{a.GetOwnerId()}
	a.OwnerId = "bob"
	a.Sla.Used = durationpb.New(0)
	a.Sla.DueAt = timestamppb.New(t0.Add(24 * time.Hour))
	a.Reassignments = []*routingv1.Reassignment{{FromOwnerId: "alice", ToOwnerId: "bob", At: timestamppb.New(t0), Reason: req.GetReason()}}
	return &routingv1.ReassignResponse{Assignment: a}, nil
}

func (f fakeRouting) PauseSla(ctx context.Context, req *routingv1.PauseSlaRequest) (*routingv1.PauseSlaResponse, error) {
	if err := f.record(ctx, "PauseSla "+req.GetAssignmentId()+" "+req.GetReason()); err != nil {
		return nil, err
	}
	a := cannedAssignment()
	if req.GetAssignmentId() != a.GetAssignmentId() {
		return nil, apierr.Status(nil, "PauseSla", apierr.NotFound("assignment %q not found", req.GetAssignmentId()))
	}
	a.State, a.Sla.Paused = routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED, true
	if req.GetReason() != "" {
		a.Reason = req.GetReason()
	}
	return &routingv1.PauseSlaResponse{Assignment: a}, nil
}

// ResumeSla refuses as for an assignment that is not paused.
func (f fakeRouting) ResumeSla(ctx context.Context, req *routingv1.ResumeSlaRequest) (*routingv1.ResumeSlaResponse, error) {
	if err := f.record(ctx, "ResumeSla "+req.GetAssignmentId()); err != nil {
		return nil, err
	}
	a := cannedAssignment()
	if req.GetAssignmentId() != "as-paused" {
		return nil, apierr.Status(nil, "ResumeSla", apierr.FailedPrecondition("resume assignment %q in state ASSIGNMENT_STATE_OPEN", req.GetAssignmentId()))
	}
	a.AssignmentId = "as-paused"
	return &routingv1.ResumeSlaResponse{Assignment: a}, nil
}

// TestAssignmentActions runs `cairn assignments reassign|pause|resume`
// against the fake routing service, comparing the output with
// testdata/golden (-update rewrites them) and checking what was sent.
func TestAssignmentActions(t *testing.T) {
	f, conn := suite(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		wantCall string
	}{
		{"assignments_reassign", []string{"assignments", "reassign", "as-1", "--owner", "bob", "--reason", "alice is on leave"}, 0, "Reassign as-1>bob alice is on leave"},
		{"assignments_reassign_json", []string{"assignments", "reassign", "--owner", "bob", "as-1", "-o", "json"}, 0, "Reassign as-1>bob "},
		{"assignments_reassign_same_owner", []string{"assignments", "reassign", "as-1", "--owner", "alice"}, 1, "Reassign as-1>alice "},
		{"assignments_reassign_unknown_owner", []string{"assignments", "reassign", "as-1", "--owner", "ghost"}, 1, "Reassign as-1>ghost "},
		{"assignments_reassign_unknown", []string{"assignments", "reassign", "as-404", "--owner", "bob"}, 1, "Reassign as-404>bob "},
		{"assignments_reassign_no_owner", []string{"assignments", "reassign", "as-1"}, 2, ""},
		{"assignments_reassign_no_id", []string{"assignments", "reassign", "--owner", "bob"}, 2, ""},
		{"assignments_pause", []string{"assignments", "pause", "as-1", "--reason", "waiting on customer"}, 0, "PauseSla as-1 waiting on customer"},
		{"assignments_resume", []string{"assignments", "resume", "as-paused"}, 0, "ResumeSla as-paused"},
		{"assignments_resume_not_paused", []string{"assignments", "resume", "as-1"}, 1, "ResumeSla as-1"},
		{"assignments_resume_reason", []string{"assignments", "resume", "as-paused", "--reason", "x"}, 2, ""},
		{"assignments_bad_subcommand", []string{"assignments", "close", "as-1"}, 2, ""},
		{"help_assignments_reassign", []string{"assignments", "reassign", "-h"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			before := len(f.calls)
			f.mu.Unlock()
			code, out, errOut := run(t, f.key, append(tt.args, conn...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			f.mu.Lock()
			calls := f.calls[before:]
			f.mu.Unlock()
			switch {
			case tt.wantCall == "" && len(calls) > 0:
				t.Errorf("calls %q, want none", calls)
			case tt.wantCall != "" && (len(calls) != 1 || calls[0] != tt.wantCall):
				t.Errorf("calls %q, want %q", calls, tt.wantCall)
			}
			got := out
			if errOut != "" {
				got += "--- stderr\n" + errOut
			}
			golden(t, tt.name, got)
		})
	}
}
