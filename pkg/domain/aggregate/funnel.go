package aggregate

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// Funnel merges funnel parts (GetFunnelResponse with every stage's
// times_in_stage_ns and times_to_convert_ns) into one funnel: counts are
// summed by stage id, cohorts, segments and plans united, and the
// conversion rate, the median and p90 of time in stage and of time to
// convert, and the time-to-convert histogram computed over every part's
// stays. The stages keep the first part's order; a stage only in a later
// part is appended. The overall conversion is summed (its parts count
// accounts, each held by one replica), the breakdown and trend groups are
// merged by key the same way, and the account ids united. With keepParts
// the rows keep the merged times (sorted), else they are dropped. The
// account counts (accounts, churned, not placed, total) and the not-placed
// reasons are summed too. The parts are not modified.
func Funnel(parts []*stagesv1.GetFunnelResponse, keepParts bool) *stagesv1.GetFunnelResponse {
	out := &stagesv1.GetFunnelResponse{}
	main := newRowSet()
	breakdown, trend := map[string]*groupSet{}, map[string]*groupSet{}
	cohorts, segments, plans, ids := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	reasons := map[string]int64{}
	for _, p := range parts {
		out.Accounts += p.GetAccounts()
		out.Churned += p.GetChurned()
		out.NotPlaced += p.GetNotPlaced()
		out.TotalAccounts += p.GetTotalAccounts()
		for _, r := range p.GetNotPlacedReasons() {
			reasons[r.GetReason()] += r.GetAccounts()
		}
		for _, c := range p.GetCohorts() {
			cohorts[c] = true
		}
		for _, s := range p.GetSegments() {
			segments[s] = true
		}
		for _, s := range p.GetPlans() {
			plans[s] = true
		}
		for _, a := range p.GetAccountIds() {
			ids[a] = true
		}
		main.add(p.GetStages())
		out.Overall = addOverall(out.Overall, p.GetOverall())
		for _, g := range p.GetBreakdown() {
			groupOf(breakdown, g).add(g)
		}
		for _, g := range p.GetTrend() {
			groupOf(trend, g).add(g)
		}
	}
	out.Stages = main.finish(keepParts)
	finishOverall(out.Overall)
	out.Breakdown = finishGroups(breakdown, keepParts)
	out.Trend = finishGroups(trend, keepParts)
	out.Cohorts = Choices(cohorts)
	out.Segments = Choices(segments)
	out.Plans = Choices(plans)
	if len(ids) > 0 {
		out.AccountIds = slices.Sorted(maps.Keys(ids))
	}
	out.NotPlacedReasons = NotPlacedReasons(reasons)
	return out
}

// rowSet sums funnel rows by stage id, in the order first seen.
type rowSet struct {
	byID map[string]*stagesv1.FunnelStage
	rows []*stagesv1.FunnelStage
}

func newRowSet() *rowSet { return &rowSet{byID: map[string]*stagesv1.FunnelStage{}} }

func (rs *rowSet) add(stages []*stagesv1.FunnelStage) {
	for _, st := range stages {
		row, ok := rs.byID[st.GetStage()]
		if !ok {
			row = &stagesv1.FunnelStage{Stage: st.GetStage(), Name: st.GetName(), OwnerTeam: st.GetOwnerTeam()}
			rs.byID[st.GetStage()] = row
			rs.rows = append(rs.rows, row)
		}
		row.Current += st.GetCurrent()
		row.Entered += st.GetEntered()
		row.Converted += st.GetConverted()
		row.ConvertedLate += st.GetConvertedLate()
		row.Dropped += st.GetDropped()
		row.DropoffSignals += st.GetDropoffSignals()
		row.Churned += st.GetChurned()
		row.EnteredDirectly += st.GetEnteredDirectly()
		row.TimesInStageNs = append(row.TimesInStageNs, st.GetTimesInStageNs()...)
		row.TimesToConvertNs = append(row.TimesToConvertNs, st.GetTimesToConvertNs()...)
	}
}

// finish computes each row's rate, medians, p90s and histogram.
func (rs *rowSet) finish(keepParts bool) []*stagesv1.FunnelStage {
	for _, row := range rs.rows {
		if row.Entered > 0 {
			row.ConversionRate = float64(row.Converted) / float64(row.Entered)
		}
		slices.Sort(row.TimesInStageNs)
		slices.Sort(row.TimesToConvertNs)
		row.MedianTimeInStage, row.P90TimeInStage = medianP90(row.TimesInStageNs)
		row.MedianTimeToConvert, row.P90TimeToConvert = medianP90(row.TimesToConvertNs)
		row.TimeToConvert = Histogram(row.TimesToConvertNs)
		if !keepParts {
			row.TimesInStageNs, row.TimesToConvertNs = nil, nil
		}
	}
	return rs.rows
}

// medianP90 of sorted times: the lower median and the nearest-rank p90;
// nil when there are none.
func medianP90(sorted []int64) (median, p90 *durationpb.Duration) {
	n := len(sorted)
	if n == 0 {
		return nil, nil
	}
	return durationpb.New(time.Duration(sorted[(n-1)/2])), durationpb.New(time.Duration(sorted[(n*9+9)/10-1]))
}

// Day is the unit of the time-to-convert buckets.
const Day = 24 * time.Hour

// ConvertBuckets are the time-to-convert histogram's fixed buckets: a
// converted stay that took d falls in the bucket with Min <= d < Max (the
// last has no Max).
var ConvertBuckets = []struct {
	Label    string
	Min, Max time.Duration
}{
	{"<1d", 0, Day},
	{"1–3d", Day, 3 * Day},
	{"3–7d", 3 * Day, 7 * Day},
	{"1–2w", 7 * Day, 14 * Day},
	{"2–4w", 14 * Day, 28 * Day},
	{"1–3mo", 28 * Day, 90 * Day},
	{">3mo", 90 * Day, 0},
}

// Bucket is the 1-based index of d's bucket in ConvertBuckets.
func Bucket(d time.Duration) int {
	for i, b := range ConvertBuckets {
		if b.Max == 0 || d < b.Max {
			return i + 1
		}
	}
	return len(ConvertBuckets)
}

// Histogram counts times (in nanoseconds) by ConvertBuckets; every bucket
// is listed, empty ones too, so histograms line up. Nil without times.
func Histogram(times []int64) []*stagesv1.FunnelBucket {
	if len(times) == 0 {
		return nil
	}
	out := make([]*stagesv1.FunnelBucket, len(ConvertBuckets))
	for i, b := range ConvertBuckets {
		out[i] = &stagesv1.FunnelBucket{Label: b.Label, Min: durationpb.New(b.Min)}
		if b.Max > 0 {
			out[i].Max = durationpb.New(b.Max)
		}
	}
	for _, t := range times {
		out[Bucket(time.Duration(t))-1].Stays++
	}
	return out
}

func addOverall(dst, src *stagesv1.FunnelOverall) *stagesv1.FunnelOverall {
	if src == nil {
		return dst
	}
	if dst == nil {
		dst = &stagesv1.FunnelOverall{FirstStage: src.GetFirstStage(), LastStage: src.GetLastStage()}
	}
	dst.Entered += src.GetEntered()
	dst.Reached += src.GetReached()
	return dst
}

func finishOverall(o *stagesv1.FunnelOverall) {
	if o == nil {
		return
	}
	o.Rate = 0
	if o.Entered > 0 {
		o.Rate = float64(o.Reached) / float64(o.Entered)
	}
}

// groupSet merges the parts of one breakdown key or trend period.
type groupSet struct {
	out  *stagesv1.FunnelGroup
	rows *rowSet
}

func groupOf(set map[string]*groupSet, g *stagesv1.FunnelGroup) *groupSet {
	gs, ok := set[g.GetKey()]
	if !ok {
		gs = &groupSet{out: &stagesv1.FunnelGroup{Key: g.GetKey()}, rows: newRowSet()}
		if g.GetStart() != nil {
			gs.out.Start = proto.Clone(g.GetStart()).(*timestamppb.Timestamp)
		}
		if g.GetEnd() != nil {
			gs.out.End = proto.Clone(g.GetEnd()).(*timestamppb.Timestamp)
		}
		set[g.GetKey()] = gs
	}
	return gs
}

func (gs *groupSet) add(g *stagesv1.FunnelGroup) {
	gs.rows.add(g.GetStages())
	gs.out.Overall = addOverall(gs.out.Overall, g.GetOverall())
}

// finishGroups lists the groups by key (periods' keys sort in time order).
func finishGroups(set map[string]*groupSet, keepParts bool) []*stagesv1.FunnelGroup {
	var out []*stagesv1.FunnelGroup
	for _, k := range slices.Sorted(maps.Keys(set)) {
		gs := set[k]
		gs.out.Stages = gs.rows.finish(keepParts)
		finishOverall(gs.out.Overall)
		out = append(out, gs.out)
	}
	return out
}

// NotPlacedReasons lists a funnel's not-placed reasons from their counts,
// most frequent first, then by reason; nil when there are none.
func NotPlacedReasons(counts map[string]int64) []*stagesv1.NotPlacedReason {
	var out []*stagesv1.NotPlacedReason
	for r, n := range counts {
		if n > 0 {
			out = append(out, &stagesv1.NotPlacedReason{Reason: r, Accounts: n})
		}
	}
	slices.SortFunc(out, func(a, b *stagesv1.NotPlacedReason) int {
		if c := cmp.Compare(b.Accounts, a.Accounts); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return out
}

// Moments merges moments-of-truth parts: eligible and reached are summed by
// moment name (in the first part's order) and the rate recomputed.
func Moments(parts []*stagesv1.GetMomentsOfTruthResponse) *stagesv1.GetMomentsOfTruthResponse {
	out := &stagesv1.GetMomentsOfTruthResponse{}
	byName := map[string]*stagesv1.Moment{}
	for _, p := range parts {
		for _, m := range p.GetMoments() {
			row, ok := byName[m.GetName()]
			if !ok {
				row = &stagesv1.Moment{Name: m.GetName(), Description: m.GetDescription()}
				byName[m.GetName()] = row
				out.Moments = append(out.Moments, row)
			}
			row.Eligible += m.GetEligible()
			row.Reached += m.GetReached()
		}
	}
	for _, m := range out.Moments {
		if m.Eligible > 0 {
			m.Rate = float64(m.Reached) / float64(m.Eligible)
		}
	}
	return out
}

// Replay merges the parts of one replay run on several replicas (each over
// its own partitions, under the same id): processed and total records and
// the per-stage counts are summed; the state is the least advanced (failed,
// then running, then done); errors are joined; it started with the first
// part and finished with the last, and has no finish time while any part
// runs. One part is returned as a copy.
func Replay(parts []*stagesv1.Replay) *stagesv1.Replay {
	if len(parts) == 0 {
		return nil
	}
	out := proto.Clone(parts[0]).(*stagesv1.Replay)
	if len(parts) == 1 {
		return out
	}
	out.Processed, out.Total, out.Error, out.StageCounts = 0, 0, "", nil
	for _, p := range parts {
		out.Processed += p.GetProcessed()
		out.Total += p.GetTotal()
		if stateRank(p.GetState()) < stateRank(out.GetState()) {
			out.State = p.GetState()
		}
		if e := p.GetError(); e != "" {
			if out.Error != "" {
				out.Error += "; "
			}
			out.Error += e
		}
		for stage, n := range p.GetStageCounts() {
			if out.StageCounts == nil {
				out.StageCounts = map[string]int64{}
			}
			out.StageCounts[stage] += n
		}
		if s := p.GetStartedAt(); s != nil && (out.StartedAt == nil || s.AsTime().Before(out.StartedAt.AsTime())) {
			out.StartedAt = proto.Clone(s).(*timestamppb.Timestamp)
		}
		if f := p.GetFinishedAt(); f != nil && out.FinishedAt != nil && f.AsTime().After(out.FinishedAt.AsTime()) {
			out.FinishedAt = proto.Clone(f).(*timestamppb.Timestamp)
		}
	}
	for _, p := range parts {
		if p.GetFinishedAt() == nil {
			out.FinishedAt = nil
		}
	}
	if out.GetState() != stagesv1.ReplayState_REPLAY_STATE_DONE {
		// Counts of a part that has not finished are not the replay's.
		out.StageCounts = nil
	}
	return out
}

// stateRank orders replay states from least to most advanced.
func stateRank(s stagesv1.ReplayState) int {
	switch s {
	case stagesv1.ReplayState_REPLAY_STATE_FAILED:
		return 0
	case stagesv1.ReplayState_REPLAY_STATE_UNSPECIFIED:
		return 1
	case stagesv1.ReplayState_REPLAY_STATE_RUNNING:
		return 2
	default:
		return 3
	}
}

// Choices lists the non-empty keys of set in order: the cohorts or segments
// a funnel offers as filters, whether one replica or several found them.
func Choices(set map[string]bool) []string {
	var out []string
	for k := range set {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
