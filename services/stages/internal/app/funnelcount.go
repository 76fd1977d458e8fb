package app

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// funnelCounter counts stage visits into a funnel part: the main funnel,
// its breakdown groups and trend periods, the overall conversion, and the
// accounts behind one figure. Visits must arrive grouped by account, in the
// order they began (the visits bucket's key order); the counter is pure, so
// tests feed it hand-made stays.
type funnelCounter struct {
	q           *journey.FunnelQuery
	stages      []*stagesv1.Stage
	first, last string
	resp        *stagesv1.GetFunnelResponse
	main        *funnelRows
	breakdown   map[string]*funnelGroup
	trend       map[string]*funnelGroup
	cohorts     map[string]bool
	segments    map[string]bool
	plans       map[string]bool
	ids         map[string]bool
	// run is the current account's visits (copies), flushed when the next
	// account's first visit arrives and by done.
	run []store.Visit
}

// funnelRows is one funnel's rows by stage id, and its overall conversion.
type funnelRows struct {
	byID    map[string]*stagesv1.FunnelStage
	list    []*stagesv1.FunnelStage
	overall *stagesv1.FunnelOverall
}

type funnelGroup struct {
	rows       *funnelRows
	start, end time.Time
}

func newFunnelCounter(def *stagesv1.JourneyDefinition, q *journey.FunnelQuery) *funnelCounter {
	c := &funnelCounter{
		q: q, stages: def.GetStages(), resp: &stagesv1.GetFunnelResponse{},
		breakdown: map[string]*funnelGroup{}, trend: map[string]*funnelGroup{},
		cohorts: map[string]bool{}, segments: map[string]bool{}, plans: map[string]bool{}, ids: map[string]bool{},
	}
	if n := len(c.stages); n > 0 {
		c.first, c.last = c.stages[0].GetId(), c.stages[n-1].GetId()
	}
	c.main = c.newRows()
	c.resp.Stages = c.main.list
	c.resp.Overall = c.main.overall
	return c
}

func (c *funnelCounter) newRows() *funnelRows {
	r := &funnelRows{byID: make(map[string]*stagesv1.FunnelStage, len(c.stages))}
	for _, st := range c.stages {
		row := &stagesv1.FunnelStage{Stage: st.GetId(), Name: st.GetName(), OwnerTeam: st.GetOwnerTeam()}
		r.byID[st.GetId()] = row
		r.list = append(r.list, row)
	}
	if len(c.stages) > 0 {
		r.overall = &stagesv1.FunnelOverall{FirstStage: c.first, LastStage: c.last}
	}
	return r
}

// add counts one visit (copied: the caller may reuse v).
func (c *funnelCounter) add(v *store.Visit) {
	c.cohorts[v.Cohort] = true
	c.segments[v.Segment] = true
	c.plans[v.Plan] = true
	if len(c.run) > 0 && c.run[0].Account != v.Account {
		c.flush()
	}
	c.run = append(c.run, *v)
}

// done counts the last account's visits and returns the part.
func (c *funnelCounter) done() *stagesv1.GetFunnelResponse {
	c.flush()
	for _, k := range sortedKeys(c.breakdown) {
		c.resp.Breakdown = append(c.resp.Breakdown, &stagesv1.FunnelGroup{Key: k, Stages: c.breakdown[k].rows.list, Overall: c.breakdown[k].rows.overall})
	}
	for _, k := range sortedKeys(c.trend) {
		g := c.trend[k]
		c.resp.Trend = append(c.resp.Trend, &stagesv1.FunnelGroup{Key: k, Start: timestamppb.New(g.start), End: timestamppb.New(g.end),
			Stages: g.rows.list, Overall: g.rows.overall})
	}
	c.resp.Cohorts = aggregate.Choices(c.cohorts)
	c.resp.Segments = aggregate.Choices(c.segments)
	c.resp.Plans = aggregate.Choices(c.plans)
	if len(c.ids) > 0 {
		c.resp.AccountIds = sortedKeys(c.ids)
	}
	return c.resp
}

func (c *funnelCounter) matches(v *store.Visit) bool {
	q := c.q
	return (q.Cohort == "" || v.Cohort == q.Cohort) && (q.Segment == "" || v.Segment == q.Segment) && (q.Plan == "" || v.Plan == q.Plan)
}

func (c *funnelCounter) inRange(t time.Time) bool {
	return (c.q.From.IsZero() || !t.Before(c.q.From)) && (c.q.To.IsZero() || t.Before(c.q.To))
}

// groupKey is the breakdown key of a visit; ok is false without a breakdown.
func (c *funnelCounter) groupKey(v *store.Visit) (string, bool) {
	switch c.q.Breakdown {
	case stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_SEGMENT:
		return v.Segment, true
	case stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_COHORT:
		return v.Cohort, true
	case stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_PLAN:
		return v.Plan, true
	}
	return "", false
}

func (c *funnelCounter) group(set map[string]*funnelGroup, key string) *funnelGroup {
	g, ok := set[key]
	if !ok {
		g = &funnelGroup{rows: c.newRows()}
		set[key] = g
	}
	return g
}

// period is the trend period a time falls in: its key, start and end.
func period(iv stagesv1.FunnelInterval, t time.Time) (key string, start, end time.Time, ok bool) {
	t = t.UTC()
	switch iv {
	case stagesv1.FunnelInterval_FUNNEL_INTERVAL_MONTH:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start.Format("2006-01"), start, start.AddDate(0, 1, 0), true
	case stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK:
		day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		start = day.AddDate(0, 0, -(int(day.Weekday())+6)%7) // back to Monday
		return start.Format("2006-01-02"), start, start.AddDate(0, 0, 7), true
	}
	return "", time.Time{}, time.Time{}, false
}

// targets are the funnels a visit counts in: the main one, its breakdown
// group and its trend period (when asked for).
func (c *funnelCounter) targets(v *store.Visit, withTrend bool) []*funnelRows {
	out := []*funnelRows{c.main}
	if k, ok := c.groupKey(v); ok {
		out = append(out, c.group(c.breakdown, k).rows)
	}
	if withTrend {
		if k, start, end, ok := period(c.q.Trend, v.Entered); ok {
			g := c.group(c.trend, k)
			g.start, g.end = start, end
			out = append(out, g.rows)
		}
	}
	return out
}

// figure records v's account when it is counted by the asked figure.
func (c *funnelCounter) figure(f stagesv1.FunnelFigure, stage, account string, bucket int) {
	if c.q.Figure != f || (stage != "" && c.q.FigureStage != stage) {
		return
	}
	if bucket != 0 && c.q.FigureBucket != 0 && c.q.FigureBucket != bucket {
		return
	}
	c.ids[account] = true
}

// flush counts the run of one account's visits.
func (c *funnelCounter) flush() {
	if len(c.run) == 0 {
		return
	}
	acct := c.run[0].Account
	inStage := false
	var firstIn *store.Visit // the account's earliest counted stay in the first stage
	for i := range c.run {
		v := &c.run[i]
		if !c.matches(v) {
			continue
		}
		if v.Outcome == store.OutcomeOpen {
			// Live figures: not narrowed by the date range.
			inStage = true
			if _, ok := c.main.byID[v.Stage]; ok {
				for _, r := range c.targets(v, false) {
					r.byID[v.Stage].Current++
				}
				c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_CURRENT, v.Stage, acct, 0)
			}
		}
		if !c.inRange(v.Entered) {
			continue
		}
		if v.Stage == c.first && firstIn == nil {
			firstIn = v
		}
		if _, ok := c.main.byID[v.Stage]; !ok {
			continue // a stage removed from the definition
		}
		c.count(v, acct)
	}
	if inStage {
		c.resp.Accounts++
	}
	if firstIn != nil {
		reached := false
		for i := range c.run {
			l := &c.run[i]
			if l.Stage == c.last && !l.Entered.Before(firstIn.Entered) && (c.q.Window == 0 || l.Entered.Sub(firstIn.Entered) <= c.q.Window) {
				reached = true
				break
			}
		}
		for _, r := range c.targets(firstIn, true) {
			r.overall.Entered++
			if reached {
				r.overall.Reached++
			}
		}
		c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_ENTERED, "", acct, 0)
		if reached {
			c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_OVERALL_REACHED, "", acct, 0)
		}
	}
	c.run = c.run[:0]
}

// count adds one stay that began in the date range to its rows.
func (c *funnelCounter) count(v *store.Visit, acct string) {
	took := v.Left.Sub(v.Entered)
	converted := v.Outcome == store.OutcomeConverted && (c.q.Window == 0 || took <= c.q.Window)
	late := v.Outcome == store.OutcomeConverted && !converted
	// Dropped means did not make it: went back, or is still in the stage
	// with a drop-off signal open. A stay flagged on the way that then
	// converted counts only among the drop-off signals.
	dropped := v.Outcome == store.OutcomeRegressed || (v.Outcome == store.OutcomeOpen && v.DropoffOpen)
	for i, r := range c.targets(v, true) {
		row := r.byID[v.Stage]
		if i > 0 && c.q.Trend != stagesv1.FunnelInterval_FUNNEL_INTERVAL_UNSPECIFIED && r == c.trendRows(v) && v.Outcome == store.OutcomeOpen {
			row.Current++ // a period's current: its stays still open
		}
		row.Entered++
		if v.Placed && v.Stage != c.first {
			row.EnteredDirectly++
		}
		switch {
		case converted:
			row.Converted++
			row.TimesToConvertNs = append(row.TimesToConvertNs, int64(took))
		case late:
			row.ConvertedLate++
		case v.Outcome == store.OutcomeChurned:
			row.Churned++
		}
		if dropped {
			row.Dropped++
		}
		if v.Dropoff {
			row.DropoffSignals++
		}
		if !v.Left.IsZero() {
			row.TimesInStageNs = append(row.TimesInStageNs, int64(took))
		}
	}
	c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_ENTERED, v.Stage, acct, 0)
	switch {
	case converted:
		c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED, v.Stage, acct, aggregate.Bucket(took))
	case late:
		c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_CONVERTED_LATE, v.Stage, acct, 0)
	case v.Outcome == store.OutcomeChurned:
		c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_CHURNED, v.Stage, acct, 0)
	}
	if dropped {
		c.figure(stagesv1.FunnelFigure_FUNNEL_FIGURE_DROPPED, v.Stage, acct, 0)
	}
}

// trendRows is the trend period's rows of v (nil without a trend).
func (c *funnelCounter) trendRows(v *store.Visit) *funnelRows {
	k, _, _, ok := period(c.q.Trend, v.Entered)
	if !ok {
		return nil
	}
	return c.trend[k].rows
}
