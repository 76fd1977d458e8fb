package account

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

func TestOwner(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return t0.AddDate(0, 0, d) }
	tests := []struct {
		name     string
		traits   map[string]string
		assigned []Assignment
		want     string
	}{
		{name: "nothing", traits: map[string]string{"segment": "smb"}, want: ""},
		{name: "nil traits and assignments", want: ""},
		{name: "owner trait wins over every team", traits: map[string]string{"owner": "ola", "csm_id": "nora"},
			assigned: []Assignment{{Owner: "diego", Team: TeamCSM, At: day(1)}}, want: "ola"},
		{name: "CSM trait before AE trait", traits: map[string]string{"ae_id": "lena", "csm_id": "nora"}, want: "nora"},
		{name: "AE trait before SDR trait", traits: map[string]string{"ae_id": "lena", "sdr_id": "sam"}, want: "lena"},
		{name: "implementation trait before SDR trait", traits: map[string]string{"implementation_id": "kenji", "sdr_id": "sam"}, want: "kenji"},
		{name: "SDR trait of a prospect", traits: map[string]string{"sdr_id": "sam"}, want: "sam"},
		{name: "a CSM assignment beats an SDR trait", traits: map[string]string{"sdr_id": "sam"},
			assigned: []Assignment{{Owner: "nora", Team: TeamCSM, At: day(3)}}, want: "nora"},
		{name: "a team's trait beats its assignment", traits: map[string]string{"csm_id": "nora"},
			assigned: []Assignment{{Owner: "diego", Team: TeamCSM, At: day(3)}}, want: "nora"},
		{name: "CSM assignment before a later SDR assignment",
			assigned: []Assignment{{Owner: "nora", Team: TeamCSM, At: day(1)}, {Owner: "sam", Team: TeamSDR, At: day(9)}}, want: "nora"},
		{name: "latest assignment of the team", assigned: []Assignment{
			{Owner: "diego", Team: TeamCSM, At: day(5)}, {Owner: "nora", Team: TeamCSM, At: day(1)}}, want: "diego"},
		{name: "same time: the later in the list", assigned: []Assignment{
			{Owner: "nora", Team: TeamCSM, At: day(1)}, {Owner: "diego", Team: TeamCSM, At: day(1)}}, want: "diego"},
		{name: "AE of an open deal", assigned: []Assignment{
			{Owner: "sam", Team: TeamSDR, At: day(1)}, {Owner: "lena", Team: TeamAE, At: day(4)}}, want: "lena"},
		{name: "manager by escalation only", assigned: []Assignment{{Owner: "morgan", Team: TeamManager, At: day(1)}}, want: "morgan"},
		{name: "assignments without owner or team are not read", assigned: []Assignment{
			{Owner: "", Team: TeamCSM, At: day(9)}, {Owner: "ghost", Team: "", At: day(9)}, {Owner: "sam", Team: TeamSDR, At: day(1)}}, want: "sam"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Owner(tc.traits, tc.assigned); got != tc.want {
				t.Errorf("Owner = %q, want %q", got, tc.want)
			}
			if len(tc.assigned) == 0 {
				if got := OwnerOf(tc.traits); got != tc.want {
					t.Errorf("OwnerOf = %q, want %q (Owner without assignments)", got, tc.want)
				}
			}
		})
	}
}

func TestRoutingAssignments(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	owners := []*routingv1.Owner{
		{OwnerId: "nora", Team: routingv1.Team_TEAM_CSM},
		{OwnerId: "kenji", Team: routingv1.Team_TEAM_IMPLEMENTATION},
		{OwnerId: "nobody"},
	}
	as := []*routingv1.Assignment{
		{AccountId: "acme", OwnerId: "nora", CreatedAt: timestamppb.New(at)},
		{AccountId: "acme", OwnerId: "kenji", CreatedAt: timestamppb.New(at.Add(time.Hour))},
		{AccountId: "acme", OwnerId: "removed", CreatedAt: timestamppb.New(at)},
		{AccountId: "acme", OwnerId: "nobody", CreatedAt: timestamppb.New(at)},
		{AccountId: "", OwnerId: "nora", CreatedAt: timestamppb.New(at)},
		{AccountId: "globex", OwnerId: "", CreatedAt: timestamppb.New(at)},
	}
	got := RoutingAssignments(owners, as)
	want := []Assignment{{Owner: "nora", Team: TeamCSM, At: at}, {Owner: "kenji", Team: TeamImplementation, At: at.Add(time.Hour)}}
	if len(got) != 1 || len(got["acme"]) != len(want) {
		t.Fatalf("RoutingAssignments = %v, want acme: %v", got, want)
	}
	for i, a := range got["acme"] {
		if a != want[i] {
			t.Errorf("acme[%d] = %+v, want %+v", i, a, want[i])
		}
	}
	if o := Owner(nil, got["acme"]); o != "nora" {
		t.Errorf("Owner of acme = %q, want the CSM nora before the later implementation lead", o)
	}
}
