package fakes

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
//
// It tells the same story as the real services: every account has a
// lifecycle (mostly customers; a few prospects and trials, which health does
// not score; a few churned accounts, which are in no stage, no health list
// and no open queue; one won back); some accounts were placed mid-journey
// (entered directly); a few known accounts are not yet placed; the funnel
// adds up (total = in a stage + churned + not placed).
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
	// placedIdx is the stage the account was first placed in (0 unless it
	// was first seen mid-journey).
	placedIdx int
	// lifecycle is its status history, oldest first; the last is current.
	lifecycle []*commonv1.StatusChange
}

// status is the account's current status.
func (a demoAccount) status() commonv1.AccountStatus {
	return a.lifecycle[len(a.lifecycle)-1].GetStatus()
}

func (a demoAccount) churned() bool {
	return a.status() == commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED
}

// paying: health scores customers and won-back accounts only.
func (a demoAccount) paying() bool {
	st := a.status()
	return st == commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER || st == commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK
}

func (a demoAccount) lifecycleProto() *commonv1.Lifecycle {
	last := a.lifecycle[len(a.lifecycle)-1]
	return &commonv1.Lifecycle{Status: last.GetStatus(), Since: last.GetAt(), History: a.lifecycle}
}

// Demo account ids with a notable status, for tests.
const (
	DemoChurned  = "umbrella-03"
	DemoTrial    = "initech-02"
	DemoProspect = "soylent-11"
	DemoWonBack  = "tyrell-09"
)

// demoNotPlaced is how many accounts the demo journey knows but has not
// placed, by reason.
var demoNotPlaced = []*stagesv1.NotPlacedReason{{Reason: "no_behavioural_event", Accounts: 2}, {Reason: "signed_up", Accounts: 1}}

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
		day := func(n int) *timestamppb.Timestamp { return timestamppb.New(now.AddDate(0, 0, -n)) }
		change := func(st commonv1.AccountStatus, ago int, ev string) *commonv1.StatusChange {
			return &commonv1.StatusChange{Status: st, At: day(ago), Event: ev}
		}
		prospect := change(commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, 400, "identify")
		trial := change(commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, 380, "trial_started")
		customer := change(commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, 360, "crm.closed_won")
		switch {
		case i%16 == 3: // churned: 3, 19, 35
			a.lifecycle = []*commonv1.StatusChange{prospect, customer, change(commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED, 20+i, "billing.churned")}
		case i%24 == 2: // trial: 2, 26
			a.lifecycle = []*commonv1.StatusChange{prospect, change(commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, 12, "trial_started")}
		case i%24 == 11: // prospect: 11, 35 is churned above
			a.lifecycle = []*commonv1.StatusChange{prospect}
		case i == 9: // won back
			a.lifecycle = []*commonv1.StatusChange{prospect, customer, change(commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED, 200, "billing.churned"),
				change(commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK, 90, "billing.subscription_started")}
			a.placedIdx = a.stageIdx
		default:
			a.lifecycle = []*commonv1.StatusChange{prospect, trial, change(commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, 200+i, "trial_converted")}
		}
		if i%12 == 10 { // first seen mid-journey (a signed contract): placed in its stage
			a.placedIdx = a.stageIdx
		}
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
	resp := &stagesv1.GetFunnelResponse{Cohorts: []string{"2026-01", "2026-02", "2026-03", "2026-04"}, Segments: []string{"enterprise", "mid-market", "smb"}}
	for si, s := range demoStages {
		fs := &stagesv1.FunnelStage{Stage: s.id, Name: s.name, OwnerTeam: s.team}
		for _, a := range d.accounts {
			if req.GetSegment() != "" && a.segment != req.GetSegment() {
				continue
			}
			// A churned account's stay in its last stage ended as churned.
			if a.stageIdx == si && !a.churned() {
				fs.Current++
			}
			if a.stageIdx == si && a.churned() {
				fs.Churned++
			}
			if a.stageIdx >= si && a.placedIdx <= si {
				fs.Entered++
			}
			if si > 0 && a.placedIdx == si {
				fs.EnteredDirectly++
			}
			if a.stageIdx > si && a.placedIdx <= si {
				fs.Converted++
			}
		}
		fs.Dropped = min(int64(si)%3, fs.Entered-fs.Converted-fs.Churned)
		if fs.Entered > 0 {
			fs.ConversionRate = float64(fs.Converted) / float64(fs.Entered)
		}
		fs.MedianTimeInStage = durationpb.New(time.Duration(5+si*9) * 24 * time.Hour)
		fs.P90TimeInStage = durationpb.New(time.Duration(14+si*20) * 24 * time.Hour)
		resp.Stages = append(resp.Stages, fs)
	}
	for _, a := range d.accounts {
		if req.GetSegment() != "" && a.segment != req.GetSegment() {
			continue
		}
		resp.TotalAccounts++
		if a.churned() {
			resp.Churned++
		}
	}
	// Accounts never placed have no cohort or segment: only the unfiltered
	// funnel counts them.
	if req.GetSegment() == "" && req.GetCohort() == "" {
		resp.NotPlacedReasons = demoNotPlaced
		resp.NotPlaced = 3
		resp.TotalAccounts += resp.NotPlaced
	}
	resp.Accounts = resp.TotalAccounts - resp.Churned
	return resp, nil
}

// stageAccounts answers StagesService.ListAccounts.
func (d *Demo) stageAccounts(_ context.Context, req *stagesv1.ListAccountsRequest) (*stagesv1.ListAccountsResponse, error) {
	resp := &stagesv1.ListAccountsResponse{Page: &commonv1.PageResponse{TotalSize: -1}}
	for _, st := range req.GetStatus() {
		if _, ok := commonv1.AccountStatus_name[int32(st)]; !ok || st == commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
			return nil, status.Errorf(codes.InvalidArgument, "status: unknown account status %d", st)
		}
	}
	for _, a := range d.accounts {
		stage := a.stage
		if a.churned() {
			stage = ""
		}
		if (req.GetStage() != "" && stage != req.GetStage()) || (req.GetSegment() != "" && a.segment != req.GetSegment()) {
			continue
		}
		if len(req.GetStatus()) == 0 && a.churned() { // the default: live accounts
			continue
		}
		if len(req.GetStatus()) > 0 && !slices.Contains(req.GetStatus(), a.status()) {
			continue
		}
		lc := a.lifecycleProto()
		resp.Accounts = append(resp.Accounts, &stagesv1.AccountSummary{AccountId: a.id, Name: a.name, Stage: stage,
			EnteredAt: timestamppb.New(a.entered), Segment: a.segment, Owner: a.owner, OpenSignals: int32(len(d.signals(a))),
			Status: lc.GetStatus(), StatusSince: lc.GetSince(), Traits: a.traits()})
	}
	return resp, nil
}

// traits are the account's traits, as the real service's journey state
// keeps them.
func (a *demoAccount) traits() map[string]string {
	return map[string]string{"name": a.name, "segment": a.segment, "owner": a.owner, "plan": []string{"starter", "pro", "enterprise"}[a.stageIdx%3]}
}

func (d *Demo) signals(a demoAccount) []*commonv1.Signal {
	var out []*commonv1.Signal
	if !a.paying() { // a churned account's signals closed; prospects and trials raise no health signals here
		return nil
	}
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
		Traits: a.traits()}
	j.Lifecycle, j.AsOf = a.lifecycleProto(), timestamppb.New(d.Now)
	at := a.entered.Add(-time.Duration((a.stageIdx-a.placedIdx)*21) * 24 * time.Hour)
	prev := ""
	for si := a.placedIdx; si <= a.stageIdx; si++ {
		j.History = append(j.History, &stagesv1.Transition{FromStage: prev, ToStage: demoStages[si].id, At: timestamppb.New(at), Cause: "event",
			TriggerMessageId: fmt.Sprintf("msg-%s-%d", a.id, si),
			Criteria:         []*stagesv1.CriterionResult{{Name: "entered_" + demoStages[si].id, Met: true}}})
		prev, at = demoStages[si].id, at.Add(21*24*time.Hour)
	}
	if a.churned() {
		lc := j.GetLifecycle()
		j.History = append(j.History, &stagesv1.Transition{FromStage: a.stage, At: lc.GetSince(), Cause: "churn"})
		j.Stage, j.EnteredAt, j.TimeInStage, j.ExitCriteria = "", nil, nil, nil
		return &stagesv1.GetAccountJourneyResponse{Journey: j}, nil
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
		Arr: a.arr, ContractEnd: timestamppb.New(a.contractEnd), Scored: a.paying(), Lifecycle: a.lifecycleProto(), AsOf: timestamppb.New(d.Now)}
	switch {
	case a.churned(): // the last score before the churn, kept for history
		h.AsOf, h.Stage = a.lifecycleProto().GetSince(), ""
	case !a.paying(): // prospects and trials are not scored
		return &healthv1.GetAccountHealthResponse{Health: &healthv1.AccountHealth{AccountId: a.id, ModelId: "default", ModelVersion: 2,
			ComputedAt: timestamppb.New(d.Now), Stage: a.stage, Lifecycle: a.lifecycleProto()}}, nil
	}
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
		if !a.paying() { // prospects, trials and churned accounts are in no list
			continue
		}
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

// ListOwners lists the demo's CSMs, one page.
func (s routingServer) ListOwners(context.Context, *routingv1.ListOwnersRequest) (*routingv1.ListOwnersResponse, error) {
	var out []*routingv1.Owner
	for _, id := range []string{"emma", "liam", "noah", "olivia"} {
		out = append(out, &routingv1.Owner{OwnerId: id, Name: strings.ToUpper(id[:1]) + id[1:], Team: routingv1.Team_TEAM_CSM})
	}
	return &routingv1.ListOwnersResponse{Owners: out, Page: &commonv1.PageResponse{}}, nil
}

func (s routingServer) ListAssignments(ctx context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	return s.d.assignments(ctx, req)
}

func (s routingServer) GetReport(context.Context, *routingv1.GetReportRequest) (*routingv1.GetReportResponse, error) {
	return s.d.report(), nil
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

// demoAssignments is the demo's handoffs: one for every fourth account,
// open or breached by due time, except that a churned account's handoff was
// closed when it churned, and some breached handoffs were touched late.
func (d *Demo) demoAssignments() []*routingv1.Assignment {
	var out []*routingv1.Assignment
	for i, a := range d.accounts {
		if i%4 != 0 && !a.churned() {
			continue
		}
		created := d.Now.Add(-24 * time.Hour)
		due := d.Now.Add(time.Duration(i-10) * time.Hour)
		as := &routingv1.Assignment{AssignmentId: fmt.Sprintf("as-%02d", i), Type: routingv1.HandoffType(1 + i%6), AccountId: a.id, OwnerId: a.owner,
			State: routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN, Decision: &routingv1.Decision{Rule: a.segment + "_pool"}, CreatedAt: timestamppb.New(created),
			Sla: &routingv1.SlaState{Policy: "first_touch", Allowed: durationpb.New(24 * time.Hour), DueAt: timestamppb.New(due), Breached: due.Before(d.Now)}}
		if i%8 == 0 {
			as.DuplicatesSuppressed, as.LastDuplicateAt = 2, timestamppb.New(created.Add(time.Second))
		}
		switch {
		case a.churned():
			as.Type, as.State, as.CloseReason = routingv1.HandoffType_HANDOFF_TYPE_RISK, routingv1.AssignmentState_ASSIGNMENT_STATE_CLOSED, "churned"
		case i%12 == 4: // touched two hours in: met on time
			touch := created.Add(2 * time.Hour)
			as.State, as.FirstTouchAt, as.TimeToFirstTouch = routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED, timestamppb.New(touch), durationpb.New(touch.Sub(created))
			as.Sla.MetAt, as.Sla.Breached = timestamppb.New(touch), false
		case i%12 == 0 && as.GetSla().GetBreached(): // breached, then worked: met late
			touch := due.Add(3 * time.Hour)
			as.State, as.FirstTouchAt, as.TimeToFirstTouch = routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED, timestamppb.New(touch), durationpb.New(touch.Sub(created))
			as.Sla.MetLate, as.Sla.MetLateAt = true, timestamppb.New(touch)
		case as.GetSla().GetBreached():
			as.State = routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
		}
		out = append(out, as)
	}
	return out
}

// assignments answers RoutingService.ListAssignments; open_queue lists open
// and untouched breached handoffs, soonest due first.
func (d *Demo) assignments(_ context.Context, req *routingv1.ListAssignmentsRequest) (*routingv1.ListAssignmentsResponse, error) {
	if req.GetOpenQueue() && req.GetState() != routingv1.AssignmentState_ASSIGNMENT_STATE_UNSPECIFIED {
		return nil, status.Error(codes.InvalidArgument, "state: must be unset with open_queue")
	}
	resp := &routingv1.ListAssignmentsResponse{Page: &commonv1.PageResponse{TotalSize: -1}}
	for _, as := range d.demoAssignments() {
		st := as.GetState()
		open := st == routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN || st == routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED
		if (req.GetOpenQueue() && !open) || (req.GetState() != 0 && req.GetState() != st) || (req.GetAccountId() != "" && req.GetAccountId() != as.GetAccountId()) ||
			(req.GetOwnerId() != "" && req.GetOwnerId() != as.GetOwnerId()) {
			continue
		}
		resp.Assignments = append(resp.Assignments, as)
	}
	if req.GetOpenQueue() {
		slices.SortStableFunc(resp.Assignments, func(x, y *routingv1.Assignment) int {
			return x.GetSla().GetDueAt().AsTime().Compare(y.GetSla().GetDueAt().AsTime())
		})
	}
	return resp, nil
}

// report answers RoutingService.GetReport: the outcome of every judged
// clock of the demo's handoffs, per type and per team.
func (d *Demo) report() *routingv1.GetReportResponse {
	rows := map[[2]string]*routingv1.Attainment{}
	var keys [][2]string
	add := func(groupBy, key string, as *routingv1.Assignment) {
		k := [2]string{groupBy, key}
		r := rows[k]
		if r == nil {
			r = &routingv1.Attainment{GroupBy: groupBy, Key: key}
			rows[k] = r
			keys = append(keys, k)
		}
		sla := as.GetSla()
		switch {
		case as.GetCloseReason() == "churned" && !sla.GetBreached():
			return // closed before it was due: not judged
		case sla.GetMetLate():
			r.MetLate++
		case sla.GetBreached():
			r.BreachedUntouched++
		case sla.GetMetAt() != nil:
			r.MetOnTime++
		default:
			return // still running
		}
		r.Assignments++
	}
	teams := map[string]string{"olivia": "csm", "noah": "ae", "emma": "sdr", "liam": "csm"}
	for _, as := range d.demoAssignments() {
		add("type", strings.ToLower(strings.TrimPrefix(as.GetType().String(), "HANDOFF_TYPE_")), as)
		add("team", teams[as.GetOwnerId()], as)
	}
	resp := &routingv1.GetReportResponse{}
	for _, k := range keys {
		r := rows[k]
		r.Met, r.Breached = r.MetOnTime, r.MetLate+r.BreachedUntouched
		if n := r.MetOnTime + r.MetLate + r.BreachedUntouched; n > 0 {
			r.Attainment = float64(r.MetOnTime) / float64(n)
		}
		r.MedianSpeedToLead, r.P90SpeedToLead = durationpb.New(3*time.Hour), durationpb.New(14*time.Hour)
		resp.Rows = append(resp.Rows, r)
	}
	return resp
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

// The demo's services have applied everything: GetStatus reports no
// backlog, so the dashboard shows no "processing" banner.

// GetStatus implements StagesService.GetStatus.
func (stagesServer) GetStatus(context.Context, *stagesv1.GetStatusRequest) (*stagesv1.GetStatusResponse, error) {
	return &stagesv1.GetStatusResponse{Backlog: &commonv1.Backlog{CaughtUp: true}}, nil
}

// GetStatus implements HealthService.GetStatus.
func (healthServer) GetStatus(context.Context, *healthv1.GetStatusRequest) (*healthv1.GetStatusResponse, error) {
	return &healthv1.GetStatusResponse{Backlog: &commonv1.Backlog{CaughtUp: true}}, nil
}

// GetStatus implements RoutingService.GetStatus.
func (routingServer) GetStatus(context.Context, *routingv1.GetStatusRequest) (*routingv1.GetStatusResponse, error) {
	return &routingv1.GetStatusResponse{Backlog: &commonv1.Backlog{CaughtUp: true}}, nil
}
