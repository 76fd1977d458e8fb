package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// aggAccount is one account's data behind the aggregates: its stays in
// the funnel's stages, its moments, its backtested outcomes and the log
// records a replay reads.
type aggAccount struct {
	id, cohort, segment string
	stays               []aggStay
	login, value        bool // eligible moments reached
	outcomes            []*healthv1.BacktestSample
	records             uint64
	finalStage          string
}

type aggStay struct {
	stage     string
	converted bool
	took      time.Duration // 0: still in the stage
}

var aggStages = []string{"awareness", "evaluation", "onboarding"}

// aggData makes n accounts with ties among the durations and scores on a
// 0.1 grid, so merges that depended on order or on per-replica medians
// would show.
func aggData(n int) []aggAccount {
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	out := make([]aggAccount, n)
	for i := range out {
		a := aggAccount{
			id:      fmt.Sprintf("acct-%03d", i),
			cohort:  []string{"2026-01", "2026-02", "2026-03"}[rng.IntN(3)],
			segment: []string{"smb", "ent", ""}[rng.IntN(3)],
			login:   rng.IntN(2) == 0, value: rng.IntN(3) == 0,
			records: uint64(1 + rng.IntN(9)),
		}
		for j, st := range aggStages[:1+rng.IntN(len(aggStages))] {
			s := aggStay{stage: st}
			if j < 2 && rng.IntN(3) > 0 {
				s.took, s.converted = time.Duration(1+rng.IntN(30))*time.Hour, rng.IntN(2) == 0
			}
			a.stays = append(a.stays, s)
			a.finalStage = st
		}
		for range rng.IntN(3) {
			usage, noise := float64(rng.IntN(700))/10, float64(rng.IntN(300))/10
			band := healthv1.Band_BAND_AT_RISK
			if usage+noise >= 60 {
				band = healthv1.Band_BAND_HEALTHY
			} else if usage+noise >= 30 {
				band = healthv1.Band_BAND_NEUTRAL
			}
			a.outcomes = append(a.outcomes, &healthv1.BacktestSample{
				Churned: rng.Float64()*100 > usage+noise, Score: usage + noise, Band: band, Points: []float64{usage, noise},
			})
		}
		out[i] = a
	}
	return out
}

// aggConn is a fake stages and health replica over some accounts. It
// answers the aggregate calls as the services do: its own part, finished
// with pkg/domain/aggregate unless the request asks for parts.
type aggConn struct {
	name     string
	accounts []aggAccount

	mu      sync.Mutex
	replays map[string]*stagesv1.Replay
}

func (c *aggConn) Invoke(_ context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if p, ok := args.(interface{ GetParts() bool }); ok && p.GetParts() && c.name != "single" && !allowsLarge(opts) {
		return status.Errorf(codes.ResourceExhausted, "%s: parts asked with gRPC's default 4 MiB receive limit", method)
	}
	switch req := args.(type) {
	case *stagesv1.GetFunnelRequest:
		part := c.funnel(req)
		proto.Merge(reply.(proto.Message), aggregate.Funnel([]*stagesv1.GetFunnelResponse{part}, req.GetParts()))
	case *stagesv1.GetMomentsOfTruthRequest:
		part := &stagesv1.GetMomentsOfTruthResponse{Moments: []*stagesv1.Moment{{Name: "first_login_7d"}, {Name: "first_value_45d"}}}
		for _, a := range c.accounts {
			if req.GetCohort() != "" && a.cohort != req.GetCohort() || req.GetSegment() != "" && a.segment != req.GetSegment() {
				continue
			}
			for i, reached := range []bool{a.login, a.value} {
				part.Moments[i].Eligible++
				if reached {
					part.Moments[i].Reached++
				}
			}
		}
		proto.Merge(reply.(proto.Message), aggregate.Moments([]*stagesv1.GetMomentsOfTruthResponse{part}))
	case *healthv1.BacktestRequest:
		part := &healthv1.BacktestResponse{HorizonDays: req.GetHorizonDays(), Components: []*healthv1.ComponentLift{{Component: "usage"}, {Component: "noise"}}}
		for _, a := range c.accounts {
			part.Samples = append(part.Samples, a.outcomes...)
		}
		proto.Merge(reply.(proto.Message), aggregate.Backtest([]*healthv1.BacktestResponse{part}, req.GetParts()))
	case *stagesv1.StartReplayRequest:
		c.mu.Lock()
		defer c.mu.Unlock()
		id := req.GetReplayId()
		if id == "" {
			id = req.GetJourneyId() + "-" + c.name // each replica would name it differently
		}
		if c.replays[id] != nil {
			return status.Errorf(codes.AlreadyExists, "replay %q: already exists", id)
		}
		rp := &stagesv1.Replay{ReplayId: id, JourneyId: req.GetJourneyId(), Version: req.GetVersion(),
			State: stagesv1.ReplayState_REPLAY_STATE_RUNNING, StartedAt: timestamppb.New(time.Unix(1000, 0))}
		for _, a := range c.accounts {
			rp.Total += a.records
		}
		c.replays[id] = rp
		reply.(*stagesv1.StartReplayResponse).Replay = proto.Clone(rp).(*stagesv1.Replay)
	case *stagesv1.GetReplayRequest:
		c.mu.Lock()
		defer c.mu.Unlock()
		rp := c.replays[req.GetReplayId()]
		if rp == nil {
			return status.Errorf(codes.NotFound, "replay %q: not found", req.GetReplayId())
		}
		reply.(*stagesv1.GetReplayResponse).Replay = proto.Clone(rp).(*stagesv1.Replay)
	default:
		return fmt.Errorf("fake replica: unexpected %s", method)
	}
	return nil
}

// allowsLarge reports whether opts raise the receive limit above gRPC's
// default, as a parts answer may need.
func allowsLarge(opts []grpc.CallOption) bool {
	for _, o := range opts {
		if m, ok := o.(grpc.MaxRecvMsgSizeCallOption); ok && m.MaxRecvMsgSize > 4<<20 {
			return true
		}
	}
	return false
}

func (c *aggConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errors.New("not used")
}

// funnel is this replica's funnel part, as stages' funnelPart.
func (c *aggConn) funnel(req *stagesv1.GetFunnelRequest) *stagesv1.GetFunnelResponse {
	resp := &stagesv1.GetFunnelResponse{}
	rows := map[string]*stagesv1.FunnelStage{}
	for _, st := range aggStages {
		rows[st] = &stagesv1.FunnelStage{Stage: st, Name: strings.ToUpper(st[:1]) + st[1:]}
		resp.Stages = append(resp.Stages, rows[st])
	}
	resp.Overall = &stagesv1.FunnelOverall{FirstStage: aggStages[0], LastStage: aggStages[len(aggStages)-1]}
	cohorts, segments := map[string]bool{}, map[string]bool{}
	for _, a := range c.accounts {
		cohorts[a.cohort], segments[a.segment] = true, true
		if req.GetCohort() != "" && a.cohort != req.GetCohort() || req.GetSegment() != "" && a.segment != req.GetSegment() {
			continue
		}
		resp.Accounts++
		// With a segment breakdown, the account's stays count in its
		// segment's group too (with the overall conversion).
		targets := [][]*stagesv1.FunnelStage{resp.Stages}
		overalls := []*stagesv1.FunnelOverall{resp.Overall}
		if req.GetBreakdown() == stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_SEGMENT {
			g := &stagesv1.FunnelGroup{Key: a.segment, Overall: &stagesv1.FunnelOverall{FirstStage: aggStages[0], LastStage: aggStages[len(aggStages)-1]}}
			for _, st := range aggStages {
				g.Stages = append(g.Stages, &stagesv1.FunnelStage{Stage: st, Name: strings.ToUpper(st[:1]) + st[1:]})
			}
			resp.Breakdown = append(resp.Breakdown, g)
			targets, overalls = append(targets, g.Stages), append(overalls, g.Overall)
		}
		for _, o := range overalls {
			o.Entered++
			if a.finalStage == aggStages[len(aggStages)-1] {
				o.Reached++
			}
		}
		for _, s := range a.stays {
			for _, stages := range targets {
				r := stages[slices.Index(aggStages, s.stage)]
				r.Entered++
				switch {
				case s.took == 0:
					r.Current++
				case s.converted:
					r.Converted++
					r.TimesToConvertNs = append(r.TimesToConvertNs, int64(s.took))
				default:
					r.Dropped++
				}
				if s.took > 0 {
					r.TimesInStageNs = append(r.TimesInStageNs, int64(s.took))
				}
			}
			if req.GetAccountsFigure() == stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED && req.GetAccountsStage() == s.stage {
				resp.AccountIds = append(resp.AccountIds, a.id)
			}
		}
	}
	for k := range cohorts {
		if k != "" {
			resp.Cohorts = append(resp.Cohorts, k)
		}
	}
	for k := range segments {
		if k != "" {
			resp.Segments = append(resp.Segments, k)
		}
	}
	return resp
}

// finishReplays completes every replay of the fake as stages' finish does.
func (c *aggConn) finishReplays(at int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rp := range c.replays {
		rp.Processed, rp.State = rp.Total, stagesv1.ReplayState_REPLAY_STATE_DONE
		rp.StageCounts = map[string]int64{}
		for _, a := range c.accounts {
			rp.StageCounts[a.finalStage]++
		}
		rp.FinishedAt = timestamppb.New(time.Unix(at, 0))
	}
}

// aggReplicas deals accounts to replicas as partitions do, and returns a
// Router over them.
func aggReplicas(t *testing.T, data []aggAccount, n int) (grpc.ClientConnInterface, []*aggConn) {
	t.Helper()
	fakes := make([]*aggConn, n)
	conns := make([]grpc.ClientConnInterface, n)
	for i := range fakes {
		fakes[i] = &aggConn{name: fmt.Sprintf("replica-%d", i), replays: map[string]*stagesv1.Replay{}}
		conns[i] = fakes[i]
	}
	for _, a := range data {
		f := fakes[stream.AccountReplica("w", a.id, routerParts, n)]
		f.accounts = append(f.accounts, a)
	}
	r, err := NewRouter(conns, routerParts, wsKeys{})
	if err != nil {
		t.Fatal(err)
	}
	return r, fakes
}

func mustEqual(t *testing.T, what string, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		t.Errorf("%s through the router differs from one replica's:\nwant: %s\ngot:  %s", what, prototext.Format(want), prototext.Format(got))
	}
}

// TestRouterAggregates checks that funnels, moments of truth, backtests
// and replays merged by the Router from 2 or 3 replicas equal what one
// replica holding every account answers.
func TestRouterAggregates(t *testing.T) {
	data := aggData(90)
	single := &aggConn{name: "single", accounts: data, replays: map[string]*stagesv1.Replay{}}
	ctx := t.Context()
	type call struct {
		name string
		do   func(grpc.ClientConnInterface) (proto.Message, error)
	}
	funnel := func(cohort, segment string, parts bool) call {
		return call{fmt.Sprintf("funnel cohort=%q segment=%q parts=%v", cohort, segment, parts), func(cc grpc.ClientConnInterface) (proto.Message, error) {
			return stagesv1.NewStagesServiceClient(cc).GetFunnel(ctx, &stagesv1.GetFunnelRequest{JourneyId: "b2b", Cohort: cohort, Segment: segment, Parts: parts})
		}}
	}
	moments := func(cohort, segment string) call {
		return call{fmt.Sprintf("moments cohort=%q segment=%q", cohort, segment), func(cc grpc.ClientConnInterface) (proto.Message, error) {
			return stagesv1.NewStagesServiceClient(cc).GetMomentsOfTruth(ctx, &stagesv1.GetMomentsOfTruthRequest{Cohort: cohort, Segment: segment})
		}}
	}
	backtest := func(horizon int32, parts bool) call {
		return call{fmt.Sprintf("backtest horizon=%d parts=%v", horizon, parts), func(cc grpc.ClientConnInterface) (proto.Message, error) {
			return healthv1.NewHealthServiceClient(cc).Backtest(ctx, &healthv1.BacktestRequest{HorizonDays: horizon, Parts: parts})
		}}
	}
	calls := []call{
		funnel("", "", false), funnel("2026-02", "", false), funnel("", "ent", false), funnel("2026-01", "smb", false),
		funnel("2026-09", "", false), funnel("", "", true),
		{"funnel by segment, accounts entered evaluation", func(cc grpc.ClientConnInterface) (proto.Message, error) {
			return stagesv1.NewStagesServiceClient(cc).GetFunnel(ctx, &stagesv1.GetFunnelRequest{JourneyId: "b2b",
				Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_SEGMENT, AccountsFigure: stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, AccountsStage: "evaluation"})
		}},
		moments("", ""), moments("2026-03", ""), moments("2026-01", "ent"),
		backtest(0, false), backtest(60, false), backtest(90, true),
	}
	for _, replicas := range []int{2, 3} {
		r, fakes := aggReplicas(t, data, replicas)
		for i, f := range fakes {
			if len(f.accounts) == 0 {
				t.Fatalf("%d replicas: replica %d holds no account", replicas, i)
			}
		}
		for _, c := range calls {
			t.Run(fmt.Sprintf("%d replicas/%s", replicas, c.name), func(t *testing.T) {
				want, err := c.do(single)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.do(r)
				if err != nil {
					t.Fatal(err)
				}
				mustEqual(t, c.name, want, got)
			})
		}
	}
}

// TestRouterReplay checks that a replay started through the Router has one
// id on every replica and that its progress merges into the single
// replica's: records summed, running until every part is done, the stage
// counts of all accounts.
func TestRouterReplay(t *testing.T) {
	data := aggData(40)
	single := &aggConn{name: "single", accounts: data, replays: map[string]*stagesv1.Replay{}}
	ctx := t.Context()
	want, err := stagesv1.NewStagesServiceClient(single).StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	single.finishReplays(2000)
	wantDone, err := stagesv1.NewStagesServiceClient(single).GetReplay(ctx, &stagesv1.GetReplayRequest{ReplayId: want.GetReplay().GetReplayId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, replicas := range []int{2, 3} {
		r, fakes := aggReplicas(t, data, replicas)
		client := stagesv1.NewStagesServiceClient(r)
		got, err := client.StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 2})
		if err != nil {
			t.Fatal(err)
		}
		id := got.GetReplay().GetReplayId()
		if id != "j-replica-0" {
			t.Errorf("%d replicas: replay id %q, want replica 0's", replicas, id)
		}
		for i, f := range fakes {
			if f.replays[id] == nil {
				t.Errorf("%d replicas: replica %d has no replay %q", replicas, i, id)
			}
		}
		// The id differs from the single replica's only by who named it.
		wantStart := proto.Clone(want).(*stagesv1.StartReplayResponse)
		wantStart.Replay.ReplayId = id
		mustEqual(t, "StartReplay", wantStart, got)

		fakes[0].finishReplays(1500)
		partial, err := client.GetReplay(ctx, &stagesv1.GetReplayRequest{ReplayId: id})
		if err != nil {
			t.Fatal(err)
		}
		if rp := partial.GetReplay(); rp.GetState() != stagesv1.ReplayState_REPLAY_STATE_RUNNING || rp.GetFinishedAt() != nil ||
			rp.GetProcessed() != fakes[0].replays[id].GetProcessed() || rp.GetTotal() != wantDone.GetReplay().GetTotal() || rp.GetStageCounts() != nil {
			t.Errorf("%d replicas, one done: %v; want running, %d of %d processed, no counts", replicas, rp, fakes[0].replays[id].GetProcessed(), wantDone.GetReplay().GetTotal())
		}
		for _, f := range fakes[1:] {
			f.finishReplays(2000)
		}
		done, err := client.GetReplay(ctx, &stagesv1.GetReplayRequest{ReplayId: id})
		if err != nil {
			t.Fatal(err)
		}
		wantGet := proto.Clone(wantDone).(*stagesv1.GetReplayResponse)
		wantGet.Replay.ReplayId = id
		mustEqual(t, "GetReplay", wantGet, done)

		// Unknown ids and a name replica 0 already used are refused, by the
		// replica that refused them.
		if _, err := client.GetReplay(ctx, &stagesv1.GetReplayRequest{ReplayId: "nope"}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "replica 0 of") {
			t.Errorf("unknown replay: %v, want NotFound naming the replica", err)
		}
		if _, err := client.StartReplay(ctx, &stagesv1.StartReplayRequest{JourneyId: "j", Version: 2}); status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "replica 0 of") {
			t.Errorf("replay id reused: %v, want AlreadyExists from replica 0", err)
		}
	}
}
