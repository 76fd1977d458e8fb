package dashboard

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func assignment(account, owner string, at time.Time) *routingv1.Assignment {
	return &routingv1.Assignment{AccountId: account, OwnerId: owner, CreatedAt: timestamppb.New(at)}
}

func TestBuildOwner(t *testing.T) {
	owners := []*routingv1.Owner{
		{OwnerId: "nora", Name: "Nora Lind", Team: routingv1.Team_TEAM_CSM},
		{OwnerId: "diego", Name: "Diego Alvarez", Team: routingv1.Team_TEAM_CSM},
		{OwnerId: "ravi", Name: "Ravi Shah", Team: routingv1.Team_TEAM_AE},
	}
	tests := []struct {
		name        string
		summary     *stagesv1.AccountSummary
		traits      map[string]string
		assignments []*routingv1.Assignment
		wantID      string
		wantName    string
	}{
		{name: "no owner anywhere", wantID: "", wantName: ""},
		{name: "latest CSM assignment wins", assignments: []*routingv1.Assignment{
			assignment("a", "nora", t0), assignment("a", "diego", t0.Add(time.Hour)), assignment("b", "nora", t0.Add(2*time.Hour)),
		}, wantID: "diego", wantName: "Diego Alvarez"},
		{name: "CSM preferred over a later AE", assignments: []*routingv1.Assignment{
			assignment("a", "nora", t0), assignment("a", "ravi", t0.Add(time.Hour)),
		}, wantID: "nora", wantName: "Nora Lind"},
		{name: "AE when no CSM", assignments: []*routingv1.Assignment{assignment("a", "ravi", t0)}, wantID: "ravi", wantName: "Ravi Shah"},
		{name: "CSM trait when no assignment", traits: map[string]string{"csm_id": "nora"}, wantID: "nora", wantName: "Nora Lind"},
		{name: "CSM trait before an AE assignment", traits: map[string]string{"csm_id": "nora"},
			assignments: []*routingv1.Assignment{assignment("a", "ravi", t0)}, wantID: "nora", wantName: "Nora Lind"},
		{name: "owner trait wins over assignments", summary: &stagesv1.AccountSummary{AccountId: "a", Owner: "someone"}, traits: map[string]string{"owner": "someone"},
			assignments: []*routingv1.Assignment{assignment("a", "nora", t0)}, wantID: "someone", wantName: "someone"},
		{name: "a CSM assignment before an SDR trait", summary: &stagesv1.AccountSummary{AccountId: "a", Owner: "sam"}, traits: map[string]string{"sdr_id": "sam"},
			assignments: []*routingv1.Assignment{assignment("a", "nora", t0)}, wantID: "nora", wantName: "Nora Lind"},
		{name: "unknown owner ignored", assignments: []*routingv1.Assignment{assignment("a", "ghost", t0)}, wantID: "", wantName: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.summary
			if s == nil {
				s = &stagesv1.AccountSummary{AccountId: "a"}
			}
			rep := Build(t0, Inputs{Journey: []*stagesv1.AccountSummary{s}, Traits: map[string]map[string]string{"a": tt.traits},
				Owners: owners, Assignments: tt.assignments})
			if len(rep.Rows) != 1 {
				t.Fatalf("rows = %d, want 1", len(rep.Rows))
			}
			if r := rep.Rows[0]; r.OwnerID != tt.wantID || r.OwnerName != tt.wantName {
				t.Errorf("owner = %q (%q), want %q (%q)", r.OwnerID, r.OwnerName, tt.wantID, tt.wantName)
			}
		})
	}
}

func TestBuildJoinsAndSummarizes(t *testing.T) {
	cust, churned := commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED
	in := Inputs{
		Journey: []*stagesv1.AccountSummary{
			{AccountId: "a", Name: "Alpha", Status: cust, Segment: "smb", Stage: "adoption"},
			{AccountId: "b", Name: "Beta", Status: commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK, Segment: "enterprise"},
			{AccountId: "c", Name: "Gamma", Status: churned, Segment: "smb"},
			{AccountId: "d", Name: "Delta", Status: commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, Segment: "smb"},
			{AccountId: "e", Name: "Epsilon", Status: cust, Segment: "smb"},
			{AccountId: "a", Name: "Alpha again", Status: cust},
		},
		Health: []*healthv1.AccountRow{
			{AccountId: "a", Score: 30, Band: healthv1.Band_BAND_AT_RISK, Arr: 1000, ContractEnd: timestamppb.New(t0)},
			{AccountId: "b", Score: 90, Band: healthv1.Band_BAND_HEALTHY, Arr: 5000},
			{AccountId: "f", Score: 70, Band: healthv1.Band_BAND_NEUTRAL, Arr: 200, Stage: "onboarding"},
		},
		Traits: map[string]map[string]string{
			"a": {"plan": "team"}, "b": {"plan": "enterprise", "csm_id": "nora"}, "f": {"name": "Phi", "segment": "smb"},
		},
		Owners: []*routingv1.Owner{{OwnerId: "nora", Name: "Nora Lind", Team: routingv1.Team_TEAM_CSM}},
	}
	rep := Build(t0, in)
	var names []string
	for _, r := range rep.Rows {
		names = append(names, r.Name)
	}
	if got, want := len(rep.Rows), 6; got != want {
		t.Fatalf("rows = %d (%v), want %d", got, names, want)
	}
	byID := map[string]Row{}
	for _, r := range rep.Rows {
		byID[r.AccountID] = r
	}
	if r := byID["f"]; r.Name != "Phi" || r.Status != "customer" || r.Band != "neutral" || r.Segment != "smb" {
		t.Errorf("health-only row = %+v, want Phi, customer, neutral, smb", r)
	}
	if r := byID["a"]; r.ContractEnd != "2026-12-01T00:00:00Z" || r.Plan != "team" || r.Band != "at_risk" {
		t.Errorf("row a = %+v", r)
	}
	if r := byID["e"]; r.Band != "" || r.ContractEnd != "" {
		t.Errorf("unscored row e = %+v, want no band and no contract end", r)
	}

	p := rep.Portfolio
	if p.Customers != 4 || p.ARR != 6200 || p.AtRiskARR != 1000 {
		t.Errorf("customers %d, ARR %v, at risk %v; want 4, 6200, 1000", p.Customers, p.ARR, p.AtRiskARR)
	}
	bands := map[string][2]float64{}
	for _, g := range p.Bands {
		bands[g.Key] = [2]float64{float64(g.Accounts), g.ARR}
	}
	want := map[string][2]float64{"healthy": {1, 5000}, "neutral": {1, 200}, "at_risk": {1, 1000}, "unscored": {1, 0}}
	for k, w := range want {
		if bands[k] != w {
			t.Errorf("band %s = %v, want %v", k, bands[k], w)
		}
	}
	// Owners: b is Nora's by trait; a, e and f have no owner, listed last.
	if len(p.ByOwner) != 2 || p.ByOwner[0].Key != "nora" || p.ByOwner[0].Label != "Nora Lind" || p.ByOwner[1].Key != Unassigned || p.ByOwner[1].Accounts != 3 {
		t.Errorf("by owner = %+v", groups(p.ByOwner))
	}
	if len(p.BySegment) != 2 || p.BySegment[0].Key != "enterprise" || p.BySegment[1].Key != "smb" || p.BySegment[1].Accounts != 3 || p.BySegment[1].AtRisk != 1 || p.BySegment[1].Unscored != 1 {
		t.Errorf("by segment = %+v", groups(p.BySegment))
	}
	if g := p.BySegment[1]; g.AvgScore != 50 {
		t.Errorf("smb average score = %v, want 50 (of the scored accounts a and f)", g.AvgScore)
	}
	// Every group of each breakdown adds up to the customers.
	for name, gs := range map[string][]*Group{"bands": p.Bands, "owner": p.ByOwner, "segment": p.BySegment, "plan": p.ByPlan} {
		n := 0
		for _, g := range gs {
			n += g.Accounts
			if g.Healthy+g.Neutral+g.AtRisk+g.Unscored != g.Accounts {
				t.Errorf("%s %s: bands add up to %d, want %d", name, g.Key, g.Healthy+g.Neutral+g.AtRisk+g.Unscored, g.Accounts)
			}
		}
		if n != p.Customers {
			t.Errorf("%s groups count %d accounts, want %d", name, n, p.Customers)
		}
	}
}

func groups(gs []*Group) []Group {
	out := make([]Group, len(gs))
	for i, g := range gs {
		out[i] = *g
	}
	return out
}

func TestBuildTrend(t *testing.T) {
	snap := func(day string, score float64, band healthv1.Band) *healthv1.Snapshot {
		return &healthv1.Snapshot{Day: day, Score: score, Band: band}
	}
	last := time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC)
	history := map[string][]*healthv1.Snapshot{
		// Out of order, with a gap: Dec 2's band carries to Dec 3 and 4.
		"a": {snap("2026-12-05", 30, healthv1.Band_BAND_AT_RISK), snap("2026-12-02", 90, healthv1.Band_BAND_HEALTHY), snap("2026-11-20", 70, healthv1.Band_BAND_NEUTRAL)},
		// First scored on Dec 4: not counted before.
		"b": {snap("2026-12-04", 60, healthv1.Band_BAND_NEUTRAL)},
		"c": {},
	}
	arr := map[string]float64{"a": 1000, "b": 50}
	got := BuildTrend(last, 5, history, arr)
	want := []TrendDay{
		{Day: "2026-12-01", Neutral: 1, AvgScore: 70},
		{Day: "2026-12-02", Healthy: 1, AvgScore: 90},
		{Day: "2026-12-03", Healthy: 1, AvgScore: 90},
		{Day: "2026-12-04", Healthy: 1, Neutral: 1, AvgScore: 75},
		{Day: "2026-12-05", Neutral: 1, AtRisk: 1, AtRiskARR: 1000, AvgScore: 45},
	}
	if len(got) != len(want) {
		t.Fatalf("days = %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("day %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
