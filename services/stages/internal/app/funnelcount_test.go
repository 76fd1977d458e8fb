package app

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// t0 is a Monday; d(n) is n days after it.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func d(n int) time.Time { return t0.Add(time.Duration(n) * aggregate.Day) }

var abc = &stagesv1.JourneyDefinition{Id: "j", Stages: []*stagesv1.Stage{{Id: "a"}, {Id: "b"}, {Id: "c"}}}

// handStays is a small set of stays whose funnels the cases below compute
// by hand (by account, in the order they began, as the store lists them):
//
//	w (2026-02, smb, team):     b d-10..d-9 placed, regressed; a d-9..d30 converted (39d); b d30 open
//	x (2026-03, smb, team):     a d0..d2 converted; b d2..d12 converted (10d); c d12 open
//	y (2026-03, ent, business): a d1..d5 converted (4d); b d5..d6 churned
//	z (2026-04, smb, team):     a d35 open, drop-off signal open
func handStays() []store.Visit {
	w := func(v store.Visit) store.Visit {
		v.Account, v.Cohort, v.Segment, v.Plan = "w", "2026-02", "smb", "team"
		return v
	}
	x := func(v store.Visit) store.Visit {
		v.Account, v.Cohort, v.Segment, v.Plan = "x", "2026-03", "smb", "team"
		return v
	}
	y := func(v store.Visit) store.Visit {
		v.Account, v.Cohort, v.Segment, v.Plan = "y", "2026-03", "ent", "business"
		return v
	}
	z := func(v store.Visit) store.Visit {
		v.Account, v.Cohort, v.Segment, v.Plan = "z", "2026-04", "smb", "team"
		return v
	}
	return []store.Visit{
		w(store.Visit{Stage: "b", Entered: d(-10), Left: d(-9), Outcome: store.OutcomeRegressed, Placed: true}),
		w(store.Visit{Stage: "a", Entered: d(-9), Left: d(30), Outcome: store.OutcomeConverted}),
		w(store.Visit{Stage: "b", Entered: d(30)}),
		x(store.Visit{Stage: "a", Entered: d(0), Left: d(2), Outcome: store.OutcomeConverted, Placed: true}),
		x(store.Visit{Stage: "b", Entered: d(2), Left: d(12), Outcome: store.OutcomeConverted}),
		x(store.Visit{Stage: "c", Entered: d(12)}),
		y(store.Visit{Stage: "a", Entered: d(1), Left: d(5), Outcome: store.OutcomeConverted, Placed: true}),
		y(store.Visit{Stage: "b", Entered: d(5), Left: d(6), Outcome: store.OutcomeChurned}),
		z(store.Visit{Stage: "a", Entered: d(35), Outcome: store.OutcomeOpen, Dropoff: true, DropoffOpen: true, Placed: true}),
	}
}

// countStays runs the counter over visits and finishes the part alone.
func countStays(visits []store.Visit, q *journey.FunnelQuery, keepParts bool) *stagesv1.GetFunnelResponse {
	c := newFunnelCounter(abc, q)
	for i := range visits {
		v := visits[i]
		c.add(&v)
	}
	return aggregate.Funnel([]*stagesv1.GetFunnelResponse{c.done()}, keepParts)
}

// rowsText sums rows up as "a e4 c3 late0 cur1 dr1 ch0 dir0 | b ...";
// zero counts are kept so that a case states every figure.
func rowsText(rows []*stagesv1.FunnelStage) string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s e%d c%d late%d cur%d dr%d ch%d dir%d", r.GetStage(), r.GetEntered(), r.GetConverted(), r.GetConvertedLate(),
			r.GetCurrent(), r.GetDropped(), r.GetChurned(), r.GetEnteredDirectly()))
	}
	return strings.Join(out, " | ")
}

func overallText(o *stagesv1.FunnelOverall) string {
	return fmt.Sprintf("%d/%d", o.GetReached(), o.GetEntered())
}

func TestFunnelCounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		q       journey.FunnelQuery
		rows    string
		overall string
		live    int64 // accounts in a stage
	}{
		{"everything", journey.FunnelQuery{},
			"a e4 c3 late0 cur1 dr1 ch0 dir0 | b e4 c1 late0 cur1 dr1 ch1 dir1 | c e1 c0 late0 cur1 dr0 ch0 dir0", "1/4", 3},
		{"conversion window 5 days: w's 39 days in a and x's 10 in b are late, x reached c after 12", journey.FunnelQuery{Window: 5 * aggregate.Day},
			"a e4 c2 late1 cur1 dr1 ch0 dir0 | b e4 c0 late1 cur1 dr1 ch1 dir1 | c e1 c0 late0 cur1 dr0 ch0 dir0", "0/4", 3},
		{"conversion window 12 days: the edge is inside", journey.FunnelQuery{Window: 12 * aggregate.Day},
			"a e4 c2 late1 cur1 dr1 ch0 dir0 | b e4 c1 late0 cur1 dr1 ch1 dir1 | c e1 c0 late0 cur1 dr0 ch0 dir0", "1/4", 3},
		{"range [d0, d35): z's stay at d35 is out, current is not narrowed", journey.FunnelQuery{From: d(0), To: d(35)},
			"a e2 c2 late0 cur1 dr0 ch0 dir0 | b e3 c1 late0 cur1 dr0 ch1 dir0 | c e1 c0 late0 cur1 dr0 ch0 dir0", "1/2", 3},
		{"range from d35: the start is inside", journey.FunnelQuery{From: d(35)},
			"a e1 c0 late0 cur1 dr1 ch0 dir0 | b e0 c0 late0 cur1 dr0 ch0 dir0 | c e0 c0 late0 cur1 dr0 ch0 dir0", "0/1", 3},
		{"range to d-9: w's first stay only", journey.FunnelQuery{To: d(-9)},
			"a e0 c0 late0 cur1 dr0 ch0 dir0 | b e1 c0 late0 cur1 dr1 ch0 dir1 | c e0 c0 late0 cur1 dr0 ch0 dir0", "0/0", 3},
		{"segment ent", journey.FunnelQuery{Segment: "ent"},
			"a e1 c1 late0 cur0 dr0 ch0 dir0 | b e1 c0 late0 cur0 dr0 ch1 dir0 | c e0 c0 late0 cur0 dr0 ch0 dir0", "0/1", 0},
		{"plan team, cohort 2026-03", journey.FunnelQuery{Plan: "team", Cohort: "2026-03"},
			"a e1 c1 late0 cur0 dr0 ch0 dir0 | b e1 c1 late0 cur0 dr0 ch0 dir0 | c e1 c0 late0 cur1 dr0 ch0 dir0", "1/1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := countStays(handStays(), &tc.q, false)
			if s := rowsText(got.GetStages()); s != tc.rows {
				t.Errorf("rows\n got %s\nwant %s", s, tc.rows)
			}
			if s := overallText(got.GetOverall()); s != tc.overall {
				t.Errorf("overall %s, want %s", s, tc.overall)
			}
			if got.GetAccounts() != tc.live {
				t.Errorf("accounts in a stage %d, want %d", got.GetAccounts(), tc.live)
			}
			if !slices.Equal(got.GetCohorts(), []string{"2026-02", "2026-03", "2026-04"}) || !slices.Equal(got.GetPlans(), []string{"business", "team"}) {
				t.Errorf("choices narrowed by the filter: %v %v", got.GetCohorts(), got.GetPlans())
			}
		})
	}
}

func TestFunnelTimeToConvert(t *testing.T) {
	got := countStays(handStays(), &journey.FunnelQuery{}, false)
	a := got.GetStages()[0]
	// a's conversions took 2, 4 and 39 days.
	if a.GetMedianTimeToConvert().AsDuration() != 4*aggregate.Day || a.GetP90TimeToConvert().AsDuration() != 39*aggregate.Day {
		t.Errorf("a: median %v p90 %v, want 96h and 936h", a.GetMedianTimeToConvert().AsDuration(), a.GetP90TimeToConvert().AsDuration())
	}
	var hist []string
	for _, b := range a.GetTimeToConvert() {
		hist = append(hist, fmt.Sprintf("%s:%d", b.GetLabel(), b.GetStays()))
	}
	if want := "<1d:0 1–3d:1 3–7d:1 1–2w:0 2–4w:0 1–3mo:1 >3mo:0"; strings.Join(hist, " ") != want {
		t.Errorf("a's histogram %s, want %s", strings.Join(hist, " "), want)
	}
	// Time in stage counts every finished stay, time to convert only conversions.
	b := got.GetStages()[1]
	if b.GetMedianTimeToConvert().AsDuration() != 10*aggregate.Day || b.GetMedianTimeInStage().AsDuration() != aggregate.Day {
		t.Errorf("b: median to convert %v (want 240h), in stage %v (want 24h of 1, 1, 10 days)", b.GetMedianTimeToConvert().AsDuration(), b.GetMedianTimeInStage().AsDuration())
	}
	if c := got.GetStages()[2]; c.GetTimeToConvert() != nil || c.GetMedianTimeToConvert() != nil {
		t.Errorf("c has no conversion but a histogram %v", c.GetTimeToConvert())
	}
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {aggregate.Day - 1, 1}, {aggregate.Day, 2}, {7 * aggregate.Day, 4}, {90*aggregate.Day - 1, 6}, {90 * aggregate.Day, 7}, {1000 * aggregate.Day, 7}} {
		if got := aggregate.Bucket(tc.d); got != tc.want {
			t.Errorf("Bucket(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestFunnelBreakdownAndTrend(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    journey.FunnelQuery
		want []string // per group: "key: rows / overall"
	}{
		{"by plan", journey.FunnelQuery{Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_PLAN}, []string{
			"business: a e1 c1 late0 cur0 dr0 ch0 dir0 | b e1 c0 late0 cur0 dr0 ch1 dir0 | c e0 c0 late0 cur0 dr0 ch0 dir0 / 0/1",
			"team: a e3 c2 late0 cur1 dr1 ch0 dir0 | b e3 c1 late0 cur1 dr1 ch0 dir1 | c e1 c0 late0 cur1 dr0 ch0 dir0 / 1/3",
		}},
		{"by cohort, in [d0, d35)", journey.FunnelQuery{Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_COHORT, From: d(0), To: d(35)}, []string{
			"2026-02: a e0 c0 late0 cur0 dr0 ch0 dir0 | b e1 c0 late0 cur1 dr0 ch0 dir0 | c e0 c0 late0 cur0 dr0 ch0 dir0 / 0/0",
			"2026-03: a e2 c2 late0 cur0 dr0 ch0 dir0 | b e2 c1 late0 cur0 dr0 ch1 dir0 | c e1 c0 late0 cur1 dr0 ch0 dir0 / 1/2",
			"2026-04: a e0 c0 late0 cur1 dr0 ch0 dir0 | b e0 c0 late0 cur0 dr0 ch0 dir0 | c e0 c0 late0 cur0 dr0 ch0 dir0 / 0/0",
		}},
		{"trend by month", journey.FunnelQuery{Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_MONTH}, []string{
			"2026-02: a e1 c1 late0 cur0 dr0 ch0 dir0 | b e1 c0 late0 cur0 dr1 ch0 dir1 | c e0 c0 late0 cur0 dr0 ch0 dir0 / 0/1",
			"2026-03: a e2 c2 late0 cur0 dr0 ch0 dir0 | b e2 c1 late0 cur0 dr0 ch1 dir0 | c e1 c0 late0 cur1 dr0 ch0 dir0 / 1/2",
			"2026-04: a e1 c0 late0 cur1 dr1 ch0 dir0 | b e1 c0 late0 cur1 dr0 ch0 dir0 | c e0 c0 late0 cur0 dr0 ch0 dir0 / 0/1",
		}},
		{"trend by week, from d0", journey.FunnelQuery{Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK, From: d(0), To: d(14)}, []string{
			"2026-03-02: a e2 c2 late0 cur0 dr0 ch0 dir0 | b e2 c1 late0 cur0 dr0 ch1 dir0 | c e0 c0 late0 cur0 dr0 ch0 dir0 / 1/2",
			"2026-03-09: a e0 c0 late0 cur0 dr0 ch0 dir0 | b e0 c0 late0 cur0 dr0 ch0 dir0 | c e1 c0 late0 cur1 dr0 ch0 dir0 / 0/0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := countStays(handStays(), &tc.q, false)
			groups := got.GetBreakdown()
			if tc.q.Trend != 0 {
				groups = got.GetTrend()
			}
			var have []string
			for _, g := range groups {
				have = append(have, g.GetKey()+": "+rowsText(g.GetStages())+" / "+overallText(g.GetOverall()))
			}
			if !slices.Equal(have, tc.want) {
				t.Errorf("groups\n got %s\nwant %s", strings.Join(have, "\n     "), strings.Join(tc.want, "\n     "))
			}
		})
	}
	week := countStays(handStays(), &journey.FunnelQuery{Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK, From: d(7), To: d(14)}, false).GetTrend()
	if len(week) != 1 || !week[0].GetStart().AsTime().Equal(d(7)) || !week[0].GetEnd().AsTime().Equal(d(14)) {
		t.Errorf("week of d12: %v", week)
	}
}

func TestFunnelAccountsOfAFigure(t *testing.T) {
	fig := func(f stagesv1.FunnelFigure, stage string, bucket int) journey.FunnelQuery {
		return journey.FunnelQuery{Figure: f, FigureStage: stage, FigureBucket: bucket}
	}
	for _, tc := range []struct {
		name string
		q    journey.FunnelQuery
		want []string
	}{
		{"converted from a", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED, "a", 0), []string{"w", "x", "y"}},
		{"converted from a in 1–3 days", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED, "a", 2), []string{"x"}},
		{"entered b (w twice)", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, "b", 0), []string{"w", "x", "y"}},
		{"in b now", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_CURRENT, "b", 0), []string{"w"}},
		{"churned from b", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_CHURNED, "b", 0), []string{"y"}},
		{"dropped in a", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_DROPPED, "a", 0), []string{"z"}},
		{"overall entered", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_ENTERED, "", 0), []string{"w", "x", "y", "z"}},
		{"overall reached", fig(stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_REACHED, "", 0), []string{"x"}},
		{"converted late from a, 5-day window", journey.FunnelQuery{Figure: stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED_LATE, FigureStage: "a", Window: 5 * aggregate.Day}, []string{"w"}},
		{"converted from a in range, segment smb", journey.FunnelQuery{Figure: stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED, FigureStage: "a", From: d(0), Segment: "smb"}, []string{"x"}},
		{"no figure", journey.FunnelQuery{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := countStays(handStays(), &tc.q, false).GetAccountIds(); !slices.Equal(got, tc.want) {
				t.Errorf("accounts %v, want %v", got, tc.want)
			}
		})
	}
}

// randomStays makes n accounts' stays over stages a, b, c.
func randomStays(n int, seed uint64) []store.Visit {
	rng := rand.New(rand.NewPCG(seed, 3))
	var out []store.Visit
	for i := range n {
		acct := fmt.Sprintf("acct-%03d", i)
		cohort := []string{"2026-01", "2026-02", "2026-03"}[rng.IntN(3)]
		at := d(-60 + rng.IntN(90))
		for j, st := range []string{"a", "b", "c"}[rng.IntN(2):] {
			v := store.Visit{Stage: st, Account: acct, Entered: at, Cohort: cohort, Segment: []string{"", "smb", "ent"}[rng.IntN(3)],
				Plan: []string{"team", "business"}[rng.IntN(2)], Placed: j == 0, Dropoff: rng.IntN(4) == 0}
			took := time.Duration(1+rng.IntN(60*24)) * time.Hour
			out = append(out, v)
			last := &out[len(out)-1]
			switch rng.IntN(5) {
			case 0:
				last.DropoffOpen = last.Dropoff
			case 1:
				last.Outcome, last.Left = store.OutcomeChurned, at.Add(took)
			case 2:
				last.Outcome, last.Left = store.OutcomeRegressed, at.Add(took)
			default:
				last.Outcome, last.Left = store.OutcomeConverted, at.Add(took)
				at = at.Add(took)
				continue
			}
			break
		}
	}
	return out
}

// TestFunnelMergesAcrossReplicas: every figure (rows, overall, breakdown,
// trend, histogram, account ids) of accounts dealt over several replicas
// merges into exactly the funnel of one replica holding them all.
func TestFunnelMergesAcrossReplicas(t *testing.T) {
	queries := map[string]journey.FunnelQuery{
		"plain":                 {},
		"window and range":      {From: d(-30), To: d(20), Window: 10 * aggregate.Day},
		"by segment, weekly":    {Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_SEGMENT, Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK},
		"by plan, monthly, ids": {Breakdown: stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_PLAN, Trend: stagesv1.FunnelInterval_FUNNEL_INTERVAL_MONTH, Figure: stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED, FigureStage: "a"},
		"overall ids":           {Figure: stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_REACHED, Window: 30 * aggregate.Day},
	}
	for name, q := range queries {
		for _, replicas := range []int{2, 3, 7} {
			t.Run(fmt.Sprintf("%s/%d replicas", name, replicas), func(t *testing.T) {
				all := randomStays(150, uint64(replicas))
				want := countStays(all, &q, false)
				split := make([][]store.Visit, replicas)
				for _, v := range all {
					r := int(v.Account[len(v.Account)-1]+v.Account[len(v.Account)-2]) % replicas
					split[r] = append(split[r], v)
				}
				var parts []*stagesv1.GetFunnelResponse
				for _, vs := range split {
					c := newFunnelCounter(abc, &q)
					for i := range vs {
						c.add(&vs[i])
					}
					parts = append(parts, aggregate.Funnel([]*stagesv1.GetFunnelResponse{c.done()}, true))
				}
				got := aggregate.Funnel(parts, false)
				if !proto.Equal(want, got) {
					t.Errorf("merged funnel differs from one replica's:\nwant %v\n got %v", want, got)
				}
				if want.GetOverall().GetEntered() == 0 || want.GetStages()[0].GetConverted() == 0 {
					t.Errorf("the random stays make an empty funnel: %v", want)
				}
			})
		}
	}
}
