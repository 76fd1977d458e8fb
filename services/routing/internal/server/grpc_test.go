package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

func TestAuthAndValidation(t *testing.T) {
	h := newHarness(t, ny(16, 10, 0))
	h.setup(nil)
	lead := &routingv1.Lead{Email: "a@acme.com"}
	tests := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"read key cannot qualify", func() error {
			_, err := h.client.Qualify(ctxWith(readKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: lead})
			return err
		}, codes.PermissionDenied, ""},
		{"write key cannot change the directory", func() error {
			_, err := h.client.UpsertOwner(ctxWith(writeKey), &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{OwnerId: "x"}})
			return err
		}, codes.PermissionDenied, ""},
		{"write key cannot read", func() error {
			_, err := h.client.ListAssignments(ctxWith(writeKey), &routingv1.ListAssignmentsRequest{})
			return err
		}, codes.PermissionDenied, ""},
		{"other workspace is denied", func() error {
			_, err := h.client.ListOwners(ctxWith(otherKey), &routingv1.ListOwnersRequest{Workspace: "ws"})
			return err
		}, codes.PermissionDenied, ""},
		{"no key", func() error {
			_, err := h.client.ListOwners(context.Background(), &routingv1.ListOwnersRequest{})
			return err
		}, codes.Unauthenticated, ""},
		{"subscribe needs a service key", func() error {
			s, err := h.client.Subscribe(ctxWith(adminKey), &routingv1.SubscribeRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.PermissionDenied, ""},
		{"qualify type", func() error {
			_, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_RENEWAL, Lead: lead})
			return err
		}, codes.InvalidArgument, "type:"},
		{"lead required", func() error {
			_, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL})
			return err
		}, codes.InvalidArgument, "lead: required"},
		{"long lead id", func() error {
			_, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{LeadId: strings.Repeat("x", 300)}})
			return err
		}, codes.InvalidArgument, "lead.lead_id: longer than 200 characters"},
		{"owner zone", func() error {
			_, err := h.client.UpsertOwner(ctxWith(adminKey), &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{OwnerId: "x", TimeZone: "Mars/Base"}})
			return err
		}, codes.InvalidArgument, "owner.time_zone"},
		{"owner hours", func() error {
			_, err := h.client.UpsertOwner(ctxWith(adminKey), &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{OwnerId: "x", WorkingHours: []*routingv1.WorkingHours{{Weekday: 1, Start: "18:00", End: "09:00"}}}})
			return err
		}, codes.InvalidArgument, "owner.working_hours[0]"},
		{"manual needs owner", func() error {
			_, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MANUAL, AccountId: "a"})
			return err
		}, codes.InvalidArgument, "owner_id: required"},
		{"manual to unknown owner", func() error {
			_, err := h.client.Handoff(ctxWith(writeKey), &routingv1.HandoffRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MANUAL, AccountId: "a", OwnerId: "ghost"})
			return err
		}, codes.NotFound, ""},
		{"bad config", func() error {
			_, err := h.client.ApplyConfig(ctxWith(adminKey), &routingv1.ApplyConfigRequest{Yaml: "rules: [{name: r, action: pool, pool: p, when: 'lead.x =='}]"})
			return err
		}, codes.InvalidArgument, "rules[0].condition"},
		{"bad page token", func() error {
			_, err := h.client.ListAssignments(ctxWith(readKey), &routingv1.ListAssignmentsRequest{Page: &commonv1.PageRequest{PageToken: "!!"}})
			return err
		}, codes.InvalidArgument, "page"},
		{"missing assignment", func() error {
			_, err := h.client.GetAssignment(ctxWith(readKey), &routingv1.GetAssignmentRequest{AssignmentId: "nope"})
			return err
		}, codes.NotFound, ""},
		{"pause a missing assignment", func() error {
			_, err := h.client.PauseSla(ctxWith(writeKey), &routingv1.PauseSlaRequest{AssignmentId: "nope"})
			return err
		}, codes.NotFound, ""},
		{"write key cannot reassign", func() error {
			_, err := h.client.Reassign(ctxWith(writeKey), &routingv1.ReassignRequest{AssignmentId: "nope", OwnerId: "bob"})
			return err
		}, codes.PermissionDenied, ""},
		{"reassign needs an owner", func() error {
			_, err := h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{AssignmentId: "nope"})
			return err
		}, codes.InvalidArgument, "owner_id: required"},
		{"reassign needs an assignment", func() error {
			_, err := h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{OwnerId: "bob"})
			return err
		}, codes.InvalidArgument, "assignment_id: required"},
		{"reassign a missing assignment", func() error {
			_, err := h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{AssignmentId: "nope", OwnerId: "bob"})
			return err
		}, codes.NotFound, ""},
		{"reassign to an unknown owner", func() error {
			a, err := h.client.Qualify(ctxWith(writeKey), &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: "r@acme.com"}})
			if err != nil {
				return err
			}
			_, err = h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{AssignmentId: a.GetAssignment().GetAssignmentId(), OwnerId: "ghost"})
			return err
		}, codes.NotFound, "owner_id"},
		{"reassign a long reason", func() error {
			_, err := h.client.Reassign(ctxWith(adminKey), &routingv1.ReassignRequest{AssignmentId: "nope", OwnerId: "bob", Reason: strings.Repeat("x", 5000)})
			return err
		}, codes.InvalidArgument, "reason"},
		{"subscribe partition out of range", func() error {
			s, err := h.client.Subscribe(ctxWith(serviceKey), &routingv1.SubscribeRequest{Partition: 99})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}, codes.InvalidArgument, "partition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("got %v, want %s containing %q", err, tt.code, tt.msg)
			}
		})
	}
}

func TestQualifyIdempotentAndPaged(t *testing.T) {
	h := newHarness(t, ny(16, 10, 0))
	h.setup(nil)
	ctx := ctxWith(writeKey)
	first, err := h.client.Qualify(ctx, &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: "a@acme.com"}, RequestId: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.client.Qualify(ctx, &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: "a@acme.com"}, RequestId: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if first.GetAssignment().GetAssignmentId() != again.GetAssignment().GetAssignmentId() {
		t.Fatalf("repeated request_id made a second assignment")
	}
	for i := range 24 {
		if _, err := h.client.Qualify(ctx, &routingv1.QualifyRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Lead: &routingv1.Lead{Email: fmt.Sprintf("l%d@x.com", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		req  *routingv1.ListAssignmentsRequest
		want int
	}{
		{"all", &routingv1.ListAssignmentsRequest{}, 25},
		{"by owner", &routingv1.ListAssignmentsRequest{OwnerId: "alice"}, 13},
		{"by owner and state", &routingv1.ListAssignmentsRequest{OwnerId: "bob", State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN}, 12},
		{"by type none", &routingv1.ListAssignmentsRequest{Type: routingv1.HandoffType_HANDOFF_TYPE_SQL}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[string]bool{}
			tt.req.Page = &commonv1.PageRequest{PageSize: 4}
			for {
				r, err := h.client.ListAssignments(ctxWith(readKey), tt.req)
				if err != nil {
					t.Fatal(err)
				}
				for _, a := range r.GetAssignments() {
					if seen[a.GetAssignmentId()] {
						t.Fatalf("%s seen twice", a.GetAssignmentId())
					}
					seen[a.GetAssignmentId()] = true
				}
				if r.GetPage().GetNextPageToken() == "" {
					break
				}
				tt.req.Page.PageToken = r.GetPage().GetNextPageToken()
			}
			if len(seen) != tt.want {
				t.Fatalf("got %d, want %d", len(seen), tt.want)
			}
		})
	}
	load, err := h.client.ListOwnerLoad(ctxWith(readKey), &routingv1.ListOwnerLoadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range load.GetOwners() {
		got = append(got, fmt.Sprintf("%s=%d/%d", o.GetOwnerId(), o.GetOpen(), o.GetCapacity()))
	}
	if strings.Join(got, " ") != "alice=13/100 bob=12/100 maria=0/0" {
		t.Fatalf("load %v", got)
	}
}

func TestReport(t *testing.T) {
	h := newHarness(t, ny(16, 9, 0))
	h.setup(&routingv1.SlaPolicy{Name: "mql", Type: routingv1.HandoffType_HANDOFF_TYPE_MQL, Within: durationpb.New(time.Hour)})
	// Four leads; touches after 10, 20 and 30 minutes; the fourth breaches.
	var ids []string
	for i := range 4 {
		ids = append(ids, h.qualify(fmt.Sprintf("r%d@acme.com", i)).GetAssignmentId())
	}
	h.clk.Set(ny(16, 9, 30))
	for i, id := range ids[:3] {
		at := ny(16, 9, 10*(i+1))
		if _, err := h.client.RecordTouch(ctxWith(writeKey), &routingv1.RecordTouchRequest{AssignmentId: id, TouchType: "contacted", At: timestamppb.New(at)}); err != nil {
			t.Fatal(err)
		}
	}
	h.clk.Set(ny(16, 12, 0))
	h.fire()
	r, err := h.client.GetReport(ctxWith(readKey), &routingv1.GetReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, row := range r.GetRows() {
		rows = append(rows, fmt.Sprintf("%s=%s n=%d met=%d breached=%d att=%.2f med=%s p90=%s", row.GetGroupBy(), row.GetKey(), row.GetAssignments(), row.GetMet(), row.GetBreached(), row.GetAttainment(),
			row.GetMedianSpeedToLead().AsDuration(), row.GetP90SpeedToLead().AsDuration()))
	}
	want := []string{
		"type=mql n=4 met=3 breached=1 att=0.75 med=20m0s p90=30m0s",
		"team=sdr n=4 met=3 breached=1 att=0.75 med=20m0s p90=30m0s",
		"owner=alice n=2 met=2 breached=0 att=1.00 med=10m0s p90=30m0s",
		"owner=bob n=2 met=1 breached=1 att=0.50 med=20m0s p90=20m0s",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("report\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

func TestConfigRoundTrip(t *testing.T) {
	h := newHarness(t, ny(16, 9, 0))
	ctx := ctxWith(adminKey)
	if _, err := h.client.GetConfig(ctx, &routingv1.GetConfigRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("config before apply: %v", err)
	}
	v, err := h.client.ValidateConfig(ctx, &routingv1.ValidateConfigRequest{Yaml: "rules: [{name: r, action: pool}]"})
	if err != nil || v.GetValid() || len(v.GetErrors()) == 0 || v.GetErrors()[0].GetPath() != "rules[0].pool_id" {
		t.Fatalf("validate: %v %v", v, err)
	}
	yml := "fallback_pool: p\nrules:\n  - {name: r, when: 'lead.territory == \"emea\"', action: pool, pool: p}\nsla_policies:\n  - {name: s, type: sql, within: 3d}\n"
	// Pools come first: a config naming a pool the workspace lacks is
	// refused, naming the field, and nothing is stored.
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: yml}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `fallback_pool_id: no pool "p"`) {
		t.Fatalf("apply before the pool exists: %v", err)
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: "rules:\n  - {name: \"r\\0\", action: owner, owner: alice}\n"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "rules[0].name: contains NUL") {
		t.Fatalf("apply with a NUL in a rule name: %v", err)
	}
	if _, err := h.client.GetConfig(ctx, &routingv1.GetConfigRequest{}); status.Code(err) != codes.NotFound {
		t.Fatalf("config after refused applies: %v", err)
	}
	if _, err := h.client.UpsertPool(ctx, &routingv1.UpsertPoolRequest{Pool: &routingv1.Pool{PoolId: "p"}}); err != nil {
		t.Fatal(err)
	}
	// The same config again stores no version and says so; a changed one
	// is the next version.
	for i, tc := range []struct {
		yml       string
		want      uint32
		unchanged bool
	}{{yml, 1, false}, {yml, 1, true}, {strings.Replace(yml, "within: 3d", "within: 3d\n", 1) + "\n", 1, true}} {
		a, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: tc.yml})
		if err != nil || a.GetConfig().GetVersion() != tc.want || a.GetUnchanged() != tc.unchanged {
			t.Fatalf("apply %d: %v %v, want version %d unchanged %t", i, a, err, tc.want, tc.unchanged)
		}
	}
	changed := strings.Replace(yml, "within: 3d", "within: 4d", 1)
	if a, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: changed}); err != nil || a.GetConfig().GetVersion() != 2 || a.GetUnchanged() {
		t.Fatalf("apply changed: %v %v", a, err)
	}
	if _, err := h.client.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Yaml: yml}); err != nil {
		t.Fatal(err)
	}
	g, err := h.client.GetConfig(ctxWith(readKey), &routingv1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if g.GetConfig().GetVersion() != 3 || !strings.Contains(g.GetYaml(), "within: 3d") || g.GetConfig().GetSlaPolicies()[0].GetWithin().AsDuration() != 24*time.Hour {
		t.Fatalf("get config: %v\n%s", g.GetConfig(), g.GetYaml())
	}
}

// TestOwnerUpdateTakesEffect checks that the owner cache used by decisions
// follows UpsertOwner and DeleteOwner.
func TestOwnerUpdateTakesEffect(t *testing.T) {
	h := newHarness(t, ny(16, 10, 0))
	h.setup(nil)
	// Each lead is a new one: a second MQL for a lead (account) whose MQL
	// is still open returns that one instead of routing again.
	leads := 0
	owners := func(n int) string {
		var got []string
		for range n {
			leads++
			got = append(got, h.qualify(fmt.Sprintf("u%d@x.com", leads)).GetOwnerId())
		}
		return strings.Join(got, ",")
	}
	if got := owners(2); got != "alice,bob" {
		t.Fatalf("before: %s", got)
	}
	away := &commonv1.TimeWindow{Start: timestamppb.New(ny(16, 0, 0)), End: timestamppb.New(ny(17, 0, 0))}
	if _, err := h.client.UpsertOwner(ctxWith(adminKey), &routingv1.UpsertOwnerRequest{Owner: &routingv1.Owner{OwnerId: "alice", Team: routingv1.Team_TEAM_SDR, OutOfOffice: away}}); err != nil {
		t.Fatal(err)
	}
	if got := owners(2); got != "bob,bob" {
		t.Fatalf("alice out of office: %s", got)
	}
	if _, err := h.client.DeleteOwner(ctxWith(adminKey), &routingv1.DeleteOwnerRequest{OwnerId: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got := owners(1); got != "" {
		t.Fatalf("nobody eligible: %q", got)
	}
}
