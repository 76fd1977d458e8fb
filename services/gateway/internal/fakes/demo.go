package fakes

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// Demo is a deterministic, read-only workspace of 48 accounts served by all
// four fake services, so the dashboard can be developed and browser-tested
// without the real suite. Its clock is fixed at Now.
type Demo struct {
	// Now is the demo's "current" time.
	Now      time.Time
	accounts []demoAccount
}

type demoAccount struct {
	id, name, segment, owner, stage string
	stageIdx                        int
	entered                         time.Time
	score                           float64
	arr                             float64
	contractEnd                     time.Time
}

var demoStages = []struct{ id, name, team string }{
	{"onboarding", "Onboarding", "CS+Implementation"},
	{"activation", "Activation", "CS"},
	{"adoption", "Adoption", "CS"},
	{"expansion", "Expansion", "AM"},
	{"renewal", "Renewal", "AM+CS"},
}

var demoNames = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne", "Soylent"}

// NewDemo builds the demo workspace as of now.
func NewDemo(now time.Time) *Demo {
	d := &Demo{Now: now}
	segs := []string{"smb", "mid-market", "enterprise"}
	owners := []string{"olivia", "noah", "emma", "liam"}
	for i := range 48 {
		idx := []int{0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 4, 4}[i%12]
		a := demoAccount{
			id:       fmt.Sprintf("%s-%02d", lower(demoNames[i%len(demoNames)]), i),
			name:     fmt.Sprintf("%s %s", demoNames[i%len(demoNames)], []string{"Inc", "GmbH", "Ltd", "Corp"}[i%4]),
			segment:  segs[i%3],
			owner:    owners[i%4],
			stageIdx: idx,
			stage:    demoStages[idx].id,
			entered:  now.Add(-time.Duration(3+i%40) * 24 * time.Hour),
			score:    float64(35 + (i*37)%60),
			arr:      float64(12000 + (i*7919)%180000),
		}
		a.contractEnd = now.Add(time.Duration(10+(i*11)%300) * 24 * time.Hour)
		d.accounts = append(d.accounts, a)
	}
	return d
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func (d *Demo) find(id string) (demoAccount, error) {
	for _, a := range d.accounts {
		if a.id == id {
			return a, nil
		}
	}
	return demoAccount{}, status.Errorf(codes.NotFound, "account %q not found", id)
}

func band(score float64) healthv1.Band {
	switch {
	case score >= 80:
		return healthv1.Band_BAND_HEALTHY
	case score >= 60:
		return healthv1.Band_BAND_NEUTRAL
	}
	return healthv1.Band_BAND_AT_RISK
}

// funnel answers StagesService.GetFunnel.
func (d *Demo) funnel(_ context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	resp := &stagesv1.GetFunnelResponse{Cohorts: []string{"2026-01", "2026-02", "2026-03", "2026-04"}}
	for si, s := range demoStages {
		fs := &stagesv1.FunnelStage{Stage: s.id, Name: s.name, OwnerTeam: s.team}
		for _, a := range d.accounts {
			if req.GetSegment() != "" && a.segment != req.GetSegment() {
				continue
			}
			if a.stageIdx == si {
				fs.Current++
			}
			if a.stageIdx >= si {
				fs.Entered++
			}
			if a.stageIdx > si {
				fs.Converted++
			}
		}
		fs.Dropped = int64(si) % 3
		if fs.Entered > 0 {
			fs.ConversionRate = float64(fs.Converted) / float64(fs.Entered)
		}
		fs.MedianTimeInStage = durationpb.New(time.Duration(5+si*9) * 24 * time.Hour)
		fs.P90TimeInStage = durationpb.New(time.Duration(14+si*20) * 24 * time.Hour)
		resp.Stages = append(resp.Stages, fs)
	}
	for _, a := range d.accounts {
		if req.GetSegment() == "" || a.segment == req.GetSegment() {
			resp.Accounts++
		}
	}
	return resp, nil
}

// stageAccounts answers StagesService.ListAccounts.
func (d *Demo) stageAccounts(_ context.Context, req *stagesv1.ListAccountsRequest) (*stagesv1.ListAccountsResponse, error) {
	resp := &stagesv1.ListAccountsResponse{Page: &commonv1.PageResponse{TotalSize: -1}}
	for _, a := range d.accounts {
		if (req.GetStage() != "" && a.stage != req.GetStage()) || (req.GetSegment() != "" && a.segment != req.GetSegment()) {
			continue
		}
		resp.Accounts = append(resp.Accounts, &stagesv1.AccountSummary{AccountId: a.id, Name: a.name, Stage: a.stage,
			EnteredAt: timestamppb.New(a.entered), Segment: a.segment, Owner: a.owner, OpenSignals: int32(len(d.signals(a)))})
	}
	return resp, nil
}

func (d *Demo) signals(a demoAccount) []*commonv1.Signal {
	var out []*commonv1.Signal
	if a.score < 60 {
		out = append(out, &commonv1.Signal{AccountId: a.id, SignalId: a.id + "/risk/usage_drop_30d", Kind: commonv1.SignalKind_SIGNAL_KIND_RISK,
			Reason: "usage_drop_30d", Message: "Weekly active users fell 42% over 30 days", State: commonv1.SignalState_SIGNAL_STATE_OPEN,
			OpenedAt: timestamppb.New(d.Now.Add(-6 * 24 * time.Hour))})
	}
	if a.score >= 85 {
		out = append(out, &commonv1.Signal{AccountId: a.id, SignalId: a.id + "/expansion/seat_limit", Kind: commonv1.SignalKind_SIGNAL_KIND_EXPANSION,
			Reason: "seat_limit_90pct", Message: "Using 93% of purchased seats", State: commonv1.SignalState_SIGNAL_STATE_OPEN,
			OpenedAt: timestamppb.New(d.Now.Add(-3 * 24 * time.Hour))})
	}
	return out
}

// accountJourney answers StagesService.GetAccountJourney.
func (d *Demo) accountJourney(_ context.Context, req *stagesv1.GetAccountJourneyRequest) (*stagesv1.GetAccountJourneyResponse, error) {
	a, err := d.find(req.GetAccountId())
	if err != nil {
		return nil, err
	}
	j := &stagesv1.AccountJourney{AccountId: a.id, JourneyId: "b2b", Version: 3, Stage: a.stage, EnteredAt: timestamppb.New(a.entered),
		TimeInStage: durationpb.New(d.Now.Sub(a.entered)), OpenSignals: d.signals(a),
		Traits: map[string]string{"name": a.name, "segment": a.segment, "owner": a.owner, "plan": []string{"starter", "pro", "enterprise"}[a.stageIdx%3]}}
	at := a.entered.Add(-time.Duration(a.stageIdx*21) * 24 * time.Hour)
	prev := ""
	for si := 0; si <= a.stageIdx; si++ {
		j.History = append(j.History, &stagesv1.Transition{FromStage: prev, ToStage: demoStages[si].id, At: timestamppb.New(at), Cause: "event",
			TriggerMessageId: fmt.Sprintf("msg-%s-%d", a.id, si),
			Criteria:         []*stagesv1.CriterionResult{{Name: "entered_" + demoStages[si].id, Met: true}}})
		prev, at = demoStages[si].id, at.Add(21*24*time.Hour)
	}
	j.ExitCriteria = []*stagesv1.CriterionResult{
		{Name: "activated", Expr: `count("report_created", "14d") >= 3`, Met: true, Description: "Created three reports in 14 days"},
		{Name: "integration", Expr: `integrations_connected() >= 1`, Met: a.score > 50, Description: "Connected an integration"},
		{Name: "team_invited", Expr: `active_users("30d") >= 5`, Met: false, Description: "Five active users in 30 days"},
	}
	return &stagesv1.GetAccountJourneyResponse{Journey: j}, nil
}

// accountHealth answers HealthService.GetAccountHealth.
func (d *Demo) accountHealth(_ context.Context, req *healthv1.GetAccountHealthRequest) (*healthv1.GetAccountHealthResponse, error) {
	a, err := d.find(req.GetAccountId())
	if err != nil {
		return nil, err
	}
	comps := []struct {
		name   string
		weight float64
	}{{"usage_breadth", 30}, {"active_users", 25}, {"support_load", 15}, {"nps", 15}, {"billing", 15}}
	h := &healthv1.AccountHealth{AccountId: a.id, Score: a.score, Band: band(a.score), PreviousScore: a.score - 3, Trend_7D: 1.5, Trend_30D: float64(int(a.score)%11 - 5),
		Direction: "up", ModelId: "default", ModelVersion: 2, ComputedAt: timestamppb.New(d.Now), OpenSignals: d.signals(a), Stage: a.stage,
		Arr: a.arr, ContractEnd: timestamppb.New(a.contractEnd)}
	for i, c := range comps {
		pts := a.score + float64((i*17)%30) - 15
		pts = max(0, min(100, pts))
		h.Components = append(h.Components, &healthv1.ComponentScore{Name: c.name, RawValue: pts / 10, Points: pts, Weight: c.weight,
			Contribution: pts * c.weight / 100, Explanation: fmt.Sprintf("%.0f points from %s", pts, c.name)})
	}
	return &healthv1.GetAccountHealthResponse{Health: h}, nil
}

// healthHistory answers HealthService.ListHealthHistory: 30 daily
// snapshots, newest first.
func (d *Demo) healthHistory(_ context.Context, req *healthv1.ListHealthHistoryRequest) (*healthv1.ListHealthHistoryResponse, error) {
	a, err := d.find(req.GetAccountId())
	if err != nil {
		return nil, err
	}
	resp := &healthv1.ListHealthHistoryResponse{}
	for i := range 30 {
		s := max(0, min(100, a.score+float64((i*7)%13)-6+float64(i)/3))
		resp.Snapshots = append(resp.Snapshots, &healthv1.Snapshot{Day: d.Now.AddDate(0, 0, -i).Format("2006-01-02"), Score: s, Band: band(s)})
	}
	return resp, nil
}

// healthAccounts answers HealthService.ListAccounts.
func (d *Demo) healthAccounts(req *healthv1.ListAccountsRequest) *healthv1.ListAccountsResponse {
	resp := &healthv1.ListAccountsResponse{}
	for _, a := range d.accounts {
		if req.GetBand() != healthv1.Band_BAND_UNSPECIFIED && band(a.score) != req.GetBand() {
			continue
		}
		if w := req.GetRenewalWindow(); w > 0 && a.contractEnd.Sub(d.Now) > time.Duration(w)*24*time.Hour {
			continue
		}
		resp.Accounts = append(resp.Accounts, &healthv1.AccountRow{AccountId: a.id, Score: a.score, Band: band(a.score), ScoreChange_30D: float64(int(a.score)%11 - 5),
			Arr: a.arr, ContractEnd: timestamppb.New(a.contractEnd), OpenSignals: int32(len(d.signals(a))), Stage: a.stage})
	}
	return resp
}

// Register serves the demo as all four services on srv.
func (d *Demo) Register(srv *grpc.Server) {
	stagesv1.RegisterStagesServiceServer(srv, stagesServer{d: d})
	healthv1.RegisterHealthServiceServer(srv, healthServer{d: d})
	routingv1.RegisterRoutingServiceServer(srv, routingServer{d: d})
	ingestionv1.RegisterIngestionServiceServer(srv, ingestionServer{d: d})
}

type stagesServer struct {
	stagesv1.UnimplementedStagesServiceServer
	d *Demo
}

func (s stagesServer) GetFunnel(ctx context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	return s.d.funnel(ctx, req)
}

func (s stagesServer) ListAccounts(ctx context.Context, req *stagesv1.ListAccountsRequest) (*stagesv1.ListAccountsResponse, error) {
	return s.d.stageAccounts(ctx, req)
}

func (s stagesServer) GetAccountJourney(ctx context.Context, req *stagesv1.GetAccountJourneyRequest) (*stagesv1.GetAccountJourneyResponse, error) {
	return s.d.accountJourney(ctx, req)
}

type routingServer struct {
	routingv1.UnimplementedRoutingServiceServer
	d *Demo
}

func (s routingServer) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	return s.d.assignments(ctx, req)
}

func (s routingServer) ListOwnerLoad(ctx context.Context, req *routingv1.ListOwnerLoadRequest) (*routingv1.ListOwnerLoadResponse, error) {
	return s.d.ownerLoad(ctx, req)
}

type ingestionServer struct {
	ingestionv1.UnimplementedIngestionServiceServer
	d *Demo
}

func (s ingestionServer) ListAccountEvents(ctx context.Context, req *ingestionv1.ListAccountEventsRequest) (*ingestionv1.ListAccountEventsResponse, error) {
	return s.d.accountEvents(ctx, req)
}

// healthServer serves the demo as HealthService.
type healthServer struct {
	healthv1.UnimplementedHealthServiceServer
	d *Demo
}

func (h healthServer) GetAccountHealth(ctx context.Context, req *healthv1.GetAccountHealthRequest) (*healthv1.GetAccountHealthResponse, error) {
	return h.d.accountHealth(ctx, req)
}

func (h healthServer) ListHealthHistory(ctx context.Context, req *healthv1.ListHealthHistoryRequest) (*healthv1.ListHealthHistoryResponse, error) {
	return h.d.healthHistory(ctx, req)
}

func (h healthServer) ListAccounts(_ context.Context, req *healthv1.ListAccountsRequest) (*healthv1.ListAccountsResponse, error) {
	return h.d.healthAccounts(req), nil
}

func (h healthServer) ListSignals(_ context.Context, req *healthv1.ListSignalsRequest) (*healthv1.ListSignalsResponse, error) {
	resp := &healthv1.ListSignalsResponse{}
	for _, a := range h.d.accounts {
		for _, s := range h.d.signals(a) {
			if req.GetKind() == commonv1.SignalKind_SIGNAL_KIND_UNSPECIFIED || req.GetKind() == s.GetKind() {
				resp.Signals = append(resp.Signals, s)
			}
		}
	}
	return resp, nil
}

// assignments answers RoutingService.ListAssignments.
func (d *Demo) assignments(_ context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	resp := &routingv1.ListAssignmentsResponse{}
	for i, a := range d.accounts {
		if i%4 != 0 {
			continue
		}
		st := routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN
		due := d.Now.Add(time.Duration(i-10) * time.Hour)
		if i%12 == 0 {
			st = routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
		}
		as := &routingv1.Assignment{AssignmentId: fmt.Sprintf("as-%02d", i), Type: routingv1.HandoffType(1 + i%6), AccountId: a.id, OwnerId: a.owner, State: st,
			Decision: &routingv1.Decision{Rule: a.segment + "_pool"}, CreatedAt: timestamppb.New(d.Now.Add(-24 * time.Hour)),
			Sla: &routingv1.SlaState{Policy: "first_touch", Allowed: durationpb.New(24 * time.Hour), DueAt: timestamppb.New(due), Breached: st == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED}}
		if (req.GetState() != 0 && req.GetState() != st) || (req.GetAccountId() != "" && req.GetAccountId() != a.id) {
			continue
		}
		resp.Assignments = append(resp.Assignments, as)
	}
	return resp, nil
}

// ownerLoad answers RoutingService.ListOwnerLoad.
func (d *Demo) ownerLoad(context.Context, *routingv1.ListOwnerLoadRequest) (*routingv1.ListOwnerLoadResponse, error) {
	return &routingv1.ListOwnerLoadResponse{Owners: []*routingv1.OwnerLoad{
		{OwnerId: "olivia", Name: "Olivia Chen", Team: routingv1.Team_TEAM_CSM, Open: 9, Capacity: 10, Breached: 1},
		{OwnerId: "noah", Name: "Noah Patel", Team: routingv1.Team_TEAM_AE, Open: 4, Capacity: 12},
		{OwnerId: "emma", Name: "Emma Rossi", Team: routingv1.Team_TEAM_SDR, Open: 14, Capacity: 12, Breached: 2},
		{OwnerId: "liam", Name: "Liam Okafor", Team: routingv1.Team_TEAM_CSM, Open: 6, Capacity: 10},
	}}, nil
}

// accountEvents answers IngestionService.ListAccountEvents.
func (d *Demo) accountEvents(_ context.Context, req *ingestionv1.ListAccountEventsRequest) (*ingestionv1.ListAccountEventsResponse, error) {
	a, err := d.find(req.GetAccountId())
	if err != nil {
		return nil, err
	}
	names := []struct{ name, source string }{{"report_created", "product"}, {"dashboard_shared", "product"}, {"crm.meeting_held", "crm"},
		{"invoice.paid", "billing"}, {"ticket.opened", "support"}, {"nps.responded", "survey"}}
	resp := &ingestionv1.ListAccountEventsResponse{}
	for i := range 12 {
		n := names[(i+len(a.id))%len(names)]
		resp.Events = append(resp.Events, &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: n.name, Source: n.source,
			UserId: fmt.Sprintf("user-%d", i%4), AccountId: a.id, Timestamp: timestamppb.New(d.Now.Add(-time.Duration(i*7+1) * time.Hour))})
	}
	return resp, nil
}
