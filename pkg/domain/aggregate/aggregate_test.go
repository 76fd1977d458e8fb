package aggregate_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// stay is one account's visit of a stage, the raw material of a funnel.
type stay struct {
	account, stage, cohort string
	converted, open        bool
	dropoff                bool
	churned                bool          // the stay ended because the account churned
	placed                 bool          // the stay began with a placement
	took                   time.Duration // 0: not finished
}

// unplaced is an account in no stage: churned, or not placed for reasons.
type unplaced struct {
	account string
	churned bool
	reasons []string
}

// unplacedAccounts makes n accounts in no stage.
func unplacedAccounts(n int, seed uint64) []unplaced {
	rng := rand.New(rand.NewPCG(seed, 3))
	var out []unplaced
	for a := range n {
		u := unplaced{account: "none-" + string(rune('a'+a%26)) + string(rune('a'+a/26))}
		switch rng.IntN(3) {
		case 0:
			u.churned = true
		case 1:
			u.reasons = []string{"no_behavioural_event"}
		default:
			u.reasons = []string{"visited_site", "signed_up"}[:1+rng.IntN(2)]
		}
		out = append(out, u)
	}
	return out
}

var stageIDs = []string{"onboard", "adopt", "expand"}

// stays makes n accounts' visits with ties among the durations.
func stays(n int, seed uint64) []stay {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []stay
	for a := range n {
		acct := "acct-" + string(rune('a'+a%26)) + string(rune('a'+a/26))
		cohort := []string{"2026-01", "2026-02", "2026-03"}[rng.IntN(3)]
		from := 0
		if rng.IntN(4) == 0 {
			from = rng.IntN(len(stageIDs)) // first seen mid-journey
		}
		for i, st := range stageIDs[from : from+1+rng.IntN(len(stageIDs)-from)] {
			s := stay{account: acct, stage: st, cohort: cohort, dropoff: rng.IntN(4) == 0, placed: i == 0}
			switch rng.IntN(4) {
			case 0:
				s.open = true
			case 1:
				s.converted = true
				s.took = time.Duration(1+rng.IntN(20)) * time.Hour
			case 2:
				s.churned = true
				s.took = time.Duration(1+rng.IntN(20)) * time.Hour
			default:
				s.took = time.Duration(1+rng.IntN(20)) * time.Hour
			}
			out = append(out, s)
		}
	}
	return out
}

// funnelPart is a replica's part over its stays and the accounts in no
// stage (what stages' funnelPart computes from its visits and accounts).
func funnelPart(ss []stay, us ...unplaced) *stagesv1.GetFunnelResponse {
	resp := &stagesv1.GetFunnelResponse{}
	rows := map[string]*stagesv1.FunnelStage{}
	for _, id := range stageIDs {
		rows[id] = &stagesv1.FunnelStage{Stage: id, Name: "Stage " + id}
		resp.Stages = append(resp.Stages, rows[id])
	}
	seen, cohorts := map[string]bool{}, map[string]bool{}
	for _, s := range ss {
		cohorts[s.cohort] = true
		if !seen[s.account] {
			seen[s.account] = true
			resp.Accounts++
		}
		r := rows[s.stage]
		r.Entered++
		if s.placed && s.stage != stageIDs[0] {
			r.EnteredDirectly++
		}
		if s.churned {
			r.Churned++
		}
		if s.open {
			r.Current++
		}
		if s.converted {
			r.Converted++
		}
		if !s.open && !s.converted && !s.churned || s.open && s.dropoff {
			r.Dropped++
		}
		if s.dropoff {
			r.DropoffSignals++
		}
		if s.took > 0 {
			r.TimesInStageNs = append(r.TimesInStageNs, int64(s.took))
		}
	}
	for c := range cohorts {
		resp.Cohorts = append(resp.Cohorts, c)
	}
	reasons := map[string]int64{}
	for _, u := range us {
		if u.churned {
			resp.Churned++
			continue
		}
		resp.NotPlaced++
		resp.Accounts++
		for _, r := range u.reasons {
			reasons[r]++
		}
	}
	resp.NotPlacedReasons = aggregate.NotPlacedReasons(reasons)
	resp.TotalAccounts = resp.Accounts + resp.Churned
	return resp
}

// split deals the accounts' items over n replicas by account, as
// partitions do.
func split[T any](items []T, n int, account func(T) string) [][]T {
	out := make([][]T, n)
	owner := map[string]int{}
	for _, it := range items {
		a := account(it)
		if _, ok := owner[a]; !ok {
			owner[a] = len(owner) * 7 % n
		}
		out[owner[a]] = append(out[owner[a]], it)
	}
	return out
}

func TestFunnelMergesExactly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		accounts int
		replicas int
	}{
		{"one account two replicas", 1, 2},
		{"odd counts two replicas", 37, 2},
		{"three replicas", 120, 3},
		{"more replicas than accounts", 2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := stays(tc.accounts, uint64(tc.accounts))
			none := unplacedAccounts(tc.accounts/2+1, uint64(tc.accounts))
			want := aggregate.Funnel([]*stagesv1.GetFunnelResponse{funnelPart(all, none...)}, false)
			var parts []*stagesv1.GetFunnelResponse
			noneParts := split(none, tc.replicas, func(u unplaced) string { return u.account })
			for i, ss := range split(all, tc.replicas, func(s stay) string { return s.account }) {
				parts = append(parts, funnelPart(ss, noneParts[i]...))
			}
			got := aggregate.Funnel(parts, false)
			if diff := differ(want, got); diff != "" {
				t.Errorf("merged funnel differs from one replica's:\n%s", diff)
			}
			var churned, direct int64
			for _, st := range got.GetStages() {
				churned += st.GetChurned()
				direct += st.GetEnteredDirectly()
			}
			if got.GetTotalAccounts() != got.GetAccounts()+got.GetChurned() || got.GetNotPlaced() == 0 && tc.accounts > 10 ||
				tc.accounts > 10 && (churned == 0 || direct == 0 || len(got.GetNotPlacedReasons()) == 0) {
				t.Errorf("merged funnel lacks the new figures: total=%d accounts=%d churned=%d not_placed=%d stage churned=%d direct=%d reasons=%v",
					got.GetTotalAccounts(), got.GetAccounts(), got.GetChurned(), got.GetNotPlaced(), churned, direct, got.GetNotPlacedReasons())
			}
		})
	}
}

func TestFunnelFigures(t *testing.T) {
	h := func(n int64) int64 { return n * int64(time.Hour) }
	parts := []*stagesv1.GetFunnelResponse{
		{Accounts: 2, Cohorts: []string{"2026-02"}, Segments: []string{"smb"}, Stages: []*stagesv1.FunnelStage{
			{Stage: "a", Entered: 2, Converted: 1, TimesInStageNs: []int64{h(5), h(1)}},
		}},
		{Accounts: 3, Cohorts: []string{"2026-01", "2026-02"}, Segments: []string{"", "ent"}, Stages: []*stagesv1.FunnelStage{
			{Stage: "a", Entered: 2, Converted: 2, Current: 1, TimesInStageNs: []int64{h(3)}},
			{Stage: "b", Entered: 1},
		}},
	}
	got := aggregate.Funnel(parts, true)
	want := &stagesv1.GetFunnelResponse{
		Accounts: 5, Cohorts: []string{"2026-01", "2026-02"}, Segments: []string{"ent", "smb"},
		Stages: []*stagesv1.FunnelStage{
			{Stage: "a", Entered: 4, Converted: 3, Current: 1, ConversionRate: 0.75,
				MedianTimeInStage: durationpb.New(3 * time.Hour), P90TimeInStage: durationpb.New(5 * time.Hour),
				TimesInStageNs: []int64{h(1), h(3), h(5)}},
			{Stage: "b", Entered: 1},
		},
	}
	if diff := differ(want, got); diff != "" {
		t.Errorf("funnel:\n%s", diff)
	}
	if len(parts[0].GetStages()[0].GetTimesInStageNs()) != 2 || parts[0].GetStages()[0].GetTimesInStageNs()[0] != h(5) {
		t.Errorf("Funnel modified its input: %v", parts[0].GetStages()[0].GetTimesInStageNs())
	}
	if got := aggregate.Funnel(parts, false); got.GetStages()[0].GetTimesInStageNs() != nil {
		t.Errorf("without keepParts the times are kept: %v", got.GetStages()[0].GetTimesInStageNs())
	}
}

func TestMoments(t *testing.T) {
	parts := []*stagesv1.GetMomentsOfTruthResponse{
		{Moments: []*stagesv1.Moment{{Name: "login", Description: "d", Eligible: 3, Reached: 1}, {Name: "value"}}},
		{Moments: []*stagesv1.Moment{{Name: "login", Description: "d", Eligible: 1, Reached: 1}, {Name: "value", Eligible: 2}}},
	}
	want := &stagesv1.GetMomentsOfTruthResponse{Moments: []*stagesv1.Moment{
		{Name: "login", Description: "d", Eligible: 4, Reached: 2, Rate: 0.5}, {Name: "value", Eligible: 2},
	}}
	if diff := differ(want, aggregate.Moments(parts)); diff != "" {
		t.Errorf("moments:\n%s", diff)
	}
}

// outcome is one account's backtested outcome.
type outcome struct {
	account string
	sample  *healthv1.BacktestSample
}

// outcomes makes scores on a 0.1 grid, so float sums depend on their order
// unless the merge fixes it, and so ties are common.
func outcomes(n int, seed uint64) []outcome {
	rng := rand.New(rand.NewPCG(seed, 2))
	var out []outcome
	for a := range n {
		for range 1 + rng.IntN(2) {
			usage, noise := float64(rng.IntN(800))/10, float64(rng.IntN(200))/10
			score := usage + noise
			band := healthv1.Band_BAND_AT_RISK
			switch {
			case score >= 70:
				band = healthv1.Band_BAND_HEALTHY
			case score >= 40:
				band = healthv1.Band_BAND_NEUTRAL
			}
			out = append(out, outcome{account: string(rune('A' + a%50)), sample: &healthv1.BacktestSample{
				Churned: rng.Float64() > score/100, Score: score, Band: band, Points: []float64{usage, noise},
			}})
		}
	}
	return out
}

func backtestPart(os []outcome) *healthv1.BacktestResponse {
	p := &healthv1.BacktestResponse{HorizonDays: 60, Components: []*healthv1.ComponentLift{{Component: "usage"}, {Component: "noise"}}}
	for _, o := range os {
		p.Samples = append(p.Samples, o.sample)
	}
	return p
}

func TestBacktestMergesExactly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		accounts int
		replicas int
	}{
		{"no outcomes", 0, 2},
		{"two replicas", 40, 2},
		{"three replicas", 300, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := outcomes(tc.accounts, uint64(tc.accounts)+5)
			want := aggregate.Backtest([]*healthv1.BacktestResponse{backtestPart(all)}, false)
			var parts []*healthv1.BacktestResponse
			for _, os := range split(all, tc.replicas, func(o outcome) string { return o.account }) {
				parts = append(parts, backtestPart(os))
			}
			got := aggregate.Backtest(parts, false)
			if diff := differ(want, got); diff != "" {
				t.Errorf("merged backtest differs from one replica's:\n%s", diff)
			}
			if got.GetRenewed()+got.GetChurned() != int64(len(all)) || len(got.GetBands()) != 3 || len(got.GetComponents()) != 2 {
				t.Errorf("backtest = %v", got)
			}
		})
	}
}

func TestBacktestFigures(t *testing.T) {
	part := &healthv1.BacktestResponse{HorizonDays: 30, Components: []*healthv1.ComponentLift{{Component: "usage"}}, Samples: []*healthv1.BacktestSample{
		{Score: 80, Band: healthv1.Band_BAND_HEALTHY, Points: []float64{40}},
		{Score: 50, Band: healthv1.Band_BAND_NEUTRAL, Points: []float64{30}},
		{Churned: true, Score: 50, Band: healthv1.Band_BAND_NEUTRAL, Points: []float64{10}},
		{Churned: true, Score: 20, Band: healthv1.Band_BAND_AT_RISK, Points: []float64{0}},
	}}
	want := &healthv1.BacktestResponse{
		Renewed: 2, Churned: 2, HorizonDays: 30,
		// pairs (80>50) (80>20) (50=50) (50>20): 3.5 / 4
		Auc: 0.875,
		Bands: []*healthv1.BandOutcome{
			{Band: healthv1.Band_BAND_HEALTHY, Accounts: 1},
			{Band: healthv1.Band_BAND_NEUTRAL, Accounts: 2, Churned: 1, ChurnRate: 0.5},
			{Band: healthv1.Band_BAND_AT_RISK, Accounts: 1, Churned: 1, ChurnRate: 1},
		},
		Components: []*healthv1.ComponentLift{{Component: "usage", Auc: 1, Lift: 30}},
	}
	if diff := differ(want, aggregate.Backtest([]*healthv1.BacktestResponse{part}, false)); diff != "" {
		t.Errorf("backtest:\n%s", diff)
	}
}

func TestReplay(t *testing.T) {
	at := func(s int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(s, 0)) }
	done := func(processed uint64, counts map[string]int64, start, end int64) *stagesv1.Replay {
		return &stagesv1.Replay{ReplayId: "r", JourneyId: "j", Version: 2, State: stagesv1.ReplayState_REPLAY_STATE_DONE,
			Processed: processed, Total: processed, StageCounts: counts, StartedAt: at(start), FinishedAt: at(end)}
	}
	running := &stagesv1.Replay{ReplayId: "r", JourneyId: "j", Version: 2, State: stagesv1.ReplayState_REPLAY_STATE_RUNNING,
		Processed: 3, Total: 10, StartedAt: at(99)}
	failed := proto.Clone(running).(*stagesv1.Replay)
	failed.State, failed.Error = stagesv1.ReplayState_REPLAY_STATE_FAILED, "boom"
	for _, tc := range []struct {
		name  string
		parts []*stagesv1.Replay
		want  *stagesv1.Replay
	}{
		{"one part", []*stagesv1.Replay{done(4, map[string]int64{"a": 1}, 100, 110)}, done(4, map[string]int64{"a": 1}, 100, 110)},
		{"all done", []*stagesv1.Replay{done(4, map[string]int64{"a": 1}, 100, 110), done(6, map[string]int64{"a": 2, "b": 1}, 101, 120)},
			done(10, map[string]int64{"a": 3, "b": 1}, 100, 120)},
		{"one running", []*stagesv1.Replay{done(4, map[string]int64{"a": 1}, 100, 110), running},
			&stagesv1.Replay{ReplayId: "r", JourneyId: "j", Version: 2, State: stagesv1.ReplayState_REPLAY_STATE_RUNNING,
				Processed: 7, Total: 14, StartedAt: at(99)}},
		{"one failed", []*stagesv1.Replay{running, failed},
			&stagesv1.Replay{ReplayId: "r", JourneyId: "j", Version: 2, State: stagesv1.ReplayState_REPLAY_STATE_FAILED,
				Processed: 6, Total: 20, Error: "boom", StartedAt: at(99)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := differ(tc.want, aggregate.Replay(tc.parts)); diff != "" {
				t.Errorf("replay:\n%s", diff)
			}
		})
	}
}

// differ is "" when want and got are equal, else both in text form.
func differ(want, got proto.Message) string {
	if proto.Equal(want, got) {
		return ""
	}
	return "want: " + prototext.Format(want) + "\ngot:  " + prototext.Format(got)
}

// TestFunnelMergesTheRevOpsFigures: the overall conversion adds up, groups
// merge by key (in key order), account ids are united, and the time to
// convert (median, p90, histogram) comes from every part's raw times.
func TestFunnelMergesTheRevOpsFigures(t *testing.T) {
	day := func(n int64) int64 { return n * int64(24*time.Hour) }
	row := func(entered, converted int64, times ...int64) []*stagesv1.FunnelStage {
		return []*stagesv1.FunnelStage{{Stage: "a", Entered: entered, Converted: converted, TimesToConvertNs: times}}
	}
	parts := []*stagesv1.GetFunnelResponse{
		{Stages: row(3, 2, day(2), day(40)), Overall: &stagesv1.FunnelOverall{FirstStage: "a", LastStage: "c", Entered: 3, Reached: 1},
			Breakdown: []*stagesv1.FunnelGroup{{Key: "team", Stages: row(3, 2, day(2), day(40))}}, AccountIds: []string{"x", "z"}, Plans: []string{"team"}},
		{Stages: row(1, 1, day(5)), Overall: &stagesv1.FunnelOverall{FirstStage: "a", LastStage: "c", Entered: 1, Reached: 1},
			Breakdown: []*stagesv1.FunnelGroup{{Key: "business", Stages: row(1, 1, day(5))}}, AccountIds: []string{"y"}, Plans: []string{"business"}},
	}
	got := aggregate.Funnel(parts, false)
	if o := got.GetOverall(); o.GetEntered() != 4 || o.GetReached() != 2 || o.GetRate() != 0.5 || o.GetFirstStage() != "a" {
		t.Errorf("overall = %v", o)
	}
	a := got.GetStages()[0]
	if a.GetMedianTimeToConvert().AsDuration() != 5*24*time.Hour || a.GetP90TimeToConvert().AsDuration() != 40*24*time.Hour || a.GetTimesToConvertNs() != nil {
		t.Errorf("time to convert: median %v p90 %v times %v", a.GetMedianTimeToConvert(), a.GetP90TimeToConvert(), a.GetTimesToConvertNs())
	}
	var hist []int64
	for _, b := range a.GetTimeToConvert() {
		hist = append(hist, b.GetStays())
	}
	if fmt.Sprint(hist) != "[0 1 1 0 0 1 0]" {
		t.Errorf("histogram %v, want [0 1 1 0 0 1 0]", hist)
	}
	if len(got.GetBreakdown()) != 2 || got.GetBreakdown()[0].GetKey() != "business" || got.GetBreakdown()[1].GetStages()[0].GetConversionRate() != 2.0/3 {
		t.Errorf("breakdown = %v", got.GetBreakdown())
	}
	if fmt.Sprint(got.GetAccountIds(), got.GetPlans()) != "[x y z] [business team]" {
		t.Errorf("ids %v plans %v", got.GetAccountIds(), got.GetPlans())
	}
}
