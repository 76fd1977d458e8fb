package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
)

// maxConversionWindow bounds --conversion-window: ten years of days.
const maxConversionWindow = 3650

// funnelFlags are the funnel's selection, as the dashboard's funnel view
// offers it.
type funnelFlags struct {
	journey, cohort, segment, plan string
	from, to                       string
	conversionWindow               int
	by, trend                      string
}

var (
	funnelBreakdowns = map[string]stagesv1.FunnelBreakdown{
		"segment": stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_SEGMENT,
		"cohort":  stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_COHORT,
		"plan":    stagesv1.FunnelBreakdown_FUNNEL_BREAKDOWN_PLAN,
	}
	funnelIntervals = map[string]stagesv1.FunnelInterval{
		"month": stagesv1.FunnelInterval_FUNNEL_INTERVAL_MONTH,
		"week":  stagesv1.FunnelInterval_FUNNEL_INTERVAL_WEEK,
	}
)

// request turns the flags into a GetFunnelRequest. --from and --to are
// UTC days, --to included (the window ends at the start of the next day).
func (f funnelFlags) request(workspace string) (*stagesv1.GetFunnelRequest, error) {
	req := &stagesv1.GetFunnelRequest{Workspace: workspace, JourneyId: f.journey, Cohort: f.cohort, Segment: f.segment, Plan: f.plan}
	var from, to time.Time
	for _, d := range []struct {
		name, v string
		t       *time.Time
	}{{"from", f.from, &from}, {"to", f.to, &to}} {
		if d.v == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, d.v)
		if err != nil {
			return nil, usagef("--%s: %q is not a day (YYYY-MM-DD)", d.name, d.v)
		}
		*d.t = t
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return nil, usagef("--to %s is before --from %s", f.to, f.from)
	}
	if !from.IsZero() || !to.IsZero() {
		req.Window = &commonv1.TimeWindow{}
		if !from.IsZero() {
			req.Window.Start = timestamppb.New(from)
		}
		if !to.IsZero() {
			req.Window.End = timestamppb.New(to.AddDate(0, 0, 1))
		}
	}
	if f.conversionWindow < 0 || f.conversionWindow > maxConversionWindow {
		return nil, usagef("--conversion-window: %d is not a number of days from 0 to %d", f.conversionWindow, maxConversionWindow)
	}
	req.ConversionWindowDays = int32(f.conversionWindow)
	if f.by != "" {
		b, ok := funnelBreakdowns[f.by]
		if !ok {
			return nil, usagef("--by must be segment, cohort or plan, not %q", f.by)
		}
		req.Breakdown = b
	}
	if f.trend != "" {
		iv, ok := funnelIntervals[f.trend]
		if !ok {
			return nil, usagef("--trend must be month or week, not %q", f.trend)
		}
		req.Trend = iv
	}
	return req, nil
}

func runFunnel(ctx context.Context, env *Env, args []string) error {
	var f funnelFlags
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{name: "funnel",
		usage:    "funnel [--journey ID] [--cohort 2026-03] [--segment smb] [--plan pro] [--from DAY] [--to DAY] [--conversion-window DAYS] [--by segment|cohort|plan] [--trend month|week] [-o table|json|csv]",
		services: []string{"stages"}, formats: []string{"table", "json", "csv"}, extra: func(fs *flag.FlagSet) {
			fs.StringVar(&f.journey, "journey", "", "journey id (default: the workspace's default journey)")
			fs.StringVar(&f.cohort, "cohort", "", "cohort month, e.g. 2026-03 (default: all)")
			fs.StringVar(&f.segment, "segment", "", "only accounts of this segment")
			fs.StringVar(&f.plan, "plan", "", "only stays that began on this plan (the account's plan trait then)")
			fs.StringVar(&f.from, "from", "", "only stays that began on or after this UTC day, YYYY-MM-DD")
			fs.StringVar(&f.to, "to", "", "only stays that began on or before this UTC day, YYYY-MM-DD")
			fs.IntVar(&f.conversionWindow, "conversion-window", 0, "a stay converts only if it moved on within this many days (later: converted late); 0 for none")
			fs.StringVar(&f.by, "by", "", "also split the funnel by segment, cohort or plan")
			fs.StringVar(&f.trend, "trend", "", "also show the funnel by the month or week in which the stays began")
		}})
	if err != nil {
		return err
	}
	defer cancel()
	req, err := f.request(c.workspace)
	if err != nil {
		return err
	}
	conns, closeConns, err := c.dialEvery("stages")
	if err != nil {
		return err
	}
	defer closeConns()
	// Several replicas: each answers for its accounts with the raw times in
	// stage, and the parts merge into the funnel over every account.
	req.Parts = len(conns) > 1
	parts := make([]*stagesv1.GetFunnelResponse, len(conns))
	for i, conn := range conns {
		if parts[i], err = stagesv1.NewStagesServiceClient(conn).GetFunnel(ctx, req); err != nil {
			return fmt.Errorf("get funnel: %w", replicaErr(i, len(conns), err))
		}
	}
	resp := parts[0]
	if len(parts) > 1 {
		resp = aggregate.Funnel(parts, false)
	}
	switch c.output {
	case "json":
		return c.printJSON(resp)
	case "csv":
		return funnelGrid(resp, f).print(env.Stdout, "csv")
	}
	return printFunnel(env, resp, f)
}

// printFunnel writes the funnel as tables: what was selected, the overall
// conversion, one row per stage, then the breakdown and trend if asked.
func printFunnel(env *Env, resp *stagesv1.GetFunnelResponse, f funnelFlags) error {
	w := env.Stdout
	fmt.Fprintf(w, "Accounts: %d\n", resp.GetAccounts())
	if sel := f.selection(); sel != "" {
		fmt.Fprintf(w, "Stays:    %s\n", sel)
	}
	if o := resp.GetOverall(); o.GetFirstStage() != "" {
		fmt.Fprintf(w, "Overall:  %d entered %s, %d reached %s (%s%%)\n", o.GetEntered(), o.GetFirstStage(), o.GetReached(), o.GetLastStage(), pct(o.GetRate()))
	}
	fmt.Fprintln(w)
	header := []string{"STAGE", "NAME", "OWNER", "CURRENT", "ENTERED", "CONVERTED"}
	if f.conversionWindow > 0 {
		header = append(header, "LATE")
	}
	header = append(header, "DROPPED", "CHURNED", "FLAGGED", "CONV%", "MEDIAN", "P90", "TO CONVERT", "P90")
	t := newTable(w, header...)
	for _, s := range resp.GetStages() {
		row := []any{s.GetStage(), s.GetName(), dash(s.GetOwnerTeam()), s.GetCurrent(), s.GetEntered(), s.GetConverted()}
		if f.conversionWindow > 0 {
			row = append(row, s.GetConvertedLate())
		}
		row = append(row, s.GetDropped(), s.GetChurned(), s.GetDropoffSignals(), pct(s.GetConversionRate()),
			dur(s.GetMedianTimeInStage()), dur(s.GetP90TimeInStage()), dur(s.GetMedianTimeToConvert()), dur(s.GetP90TimeToConvert()))
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, g := range []struct {
		title, key string
		groups     []*stagesv1.FunnelGroup
	}{{"By " + f.by, upper(f.by), resp.GetBreakdown()}, {"By " + f.trend, upper(f.trend), resp.GetTrend()}} {
		if g.key == "" {
			continue
		}
		fmt.Fprintf(w, "\n%s (conversion %% per stage):\n", g.title)
		if len(g.groups) == 0 {
			fmt.Fprintln(w, "no stay began in this selection")
			continue
		}
		if err := groupTable(w, g.key, g.groups, resp.GetStages()); err != nil {
			return err
		}
	}
	return nil
}

// groupTable prints one row per group: its overall conversion and each
// stage's conversion rate (the last stage converts to nothing). A group
// without a key (no plan or segment known) is "-".
func groupTable(w io.Writer, key string, groups []*stagesv1.FunnelGroup, stages []*stagesv1.FunnelStage) error {
	header := []string{key, "ENTERED", "REACHED", "OVERALL%"}
	for _, s := range stages[:max(0, len(stages)-1)] {
		header = append(header, s.GetStage())
	}
	t := newTable(w, header...)
	for _, g := range groups {
		row := []any{dash(g.GetKey()), g.GetOverall().GetEntered(), g.GetOverall().GetReached(), pct(g.GetOverall().GetRate())}
		by := map[string]*stagesv1.FunnelStage{}
		for _, s := range g.GetStages() {
			by[s.GetStage()] = s
		}
		for _, s := range stages[:max(0, len(stages)-1)] {
			if gs := by[s.GetStage()]; gs.GetEntered() > 0 {
				row = append(row, pct(gs.GetConversionRate()))
			} else {
				row = append(row, "-")
			}
		}
		t.row(row...)
	}
	return t.flush()
}

// funnelGrid is the funnel as one CSV: a row per stage of the whole
// funnel (group_by and key empty), then per stage of each breakdown group
// and trend period. Durations are in seconds, empty when not measured.
func funnelGrid(resp *stagesv1.GetFunnelResponse, f funnelFlags) *grid {
	g := &grid{header: []string{"group_by", "key", "stage", "name", "current", "entered", "converted", "converted_late", "dropped", "churned", "flagged",
		"conversion_rate", "median_time_in_stage_s", "p90_time_in_stage_s", "median_time_to_convert_s", "p90_time_to_convert_s"}}
	add := func(by, key string, stages []*stagesv1.FunnelStage) {
		for _, s := range stages {
			g.add(by, key, s.GetStage(), s.GetName(), s.GetCurrent(), s.GetEntered(), s.GetConverted(), s.GetConvertedLate(), s.GetDropped(), s.GetChurned(), s.GetDropoffSignals(),
				strconv.FormatFloat(s.GetConversionRate(), 'f', 4, 64), secs(s.GetMedianTimeInStage()), secs(s.GetP90TimeInStage()), secs(s.GetMedianTimeToConvert()), secs(s.GetP90TimeToConvert()))
		}
	}
	add("", "", resp.GetStages())
	for _, gr := range resp.GetBreakdown() {
		add(f.by, gr.GetKey(), gr.GetStages())
	}
	for _, gr := range resp.GetTrend() {
		add(f.trend, gr.GetKey(), gr.GetStages())
	}
	return g
}

// selection says in words which stays the funnel counts, "" for all.
func (f funnelFlags) selection() string {
	var parts []string
	switch {
	case f.from != "" && f.to != "":
		parts = append(parts, "began "+f.from+" to "+f.to)
	case f.from != "":
		parts = append(parts, "began on or after "+f.from)
	case f.to != "":
		parts = append(parts, "began on or before "+f.to)
	}
	if f.conversionWindow > 0 {
		parts = append(parts, fmt.Sprintf("%d-day conversion window", f.conversionWindow))
	}
	for _, x := range []struct{ name, v string }{{"journey", f.journey}, {"cohort", f.cohort}, {"segment", f.segment}, {"plan", f.plan}} {
		if x.v != "" {
			parts = append(parts, x.name+" "+x.v)
		}
	}
	return strings.Join(parts, ", ")
}

// pct is a rate as a percentage with one decimal.
func pct(rate float64) string { return strconv.FormatFloat(100*rate, 'f', 1, 64) }

// secs is a duration in whole seconds, "" when unset.
func secs(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return strconv.FormatInt(int64(d.AsDuration().Round(time.Second)/time.Second), 10)
}
