package aggregate

import (
	"cmp"
	"slices"
	"strings"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Funnel merges funnel parts (GetFunnelResponse with every stage's
// times_in_stage_ns) into one funnel: counts are summed by stage id,
// cohorts and segments united, and the conversion rate, median and p90 of
// time in stage computed over every part's stays. The stages keep the
// first part's order; a stage only in a later part is appended. With
// keepParts the rows keep the merged times (sorted), else they are
// dropped. The account counts (accounts, churned, not placed, total) and
// the not-placed reasons are summed too. The parts are not modified.
func Funnel(parts []*stagesv1.GetFunnelResponse, keepParts bool) *stagesv1.GetFunnelResponse {
	out := &stagesv1.GetFunnelResponse{}
	rows := map[string]*stagesv1.FunnelStage{}
	cohorts, segments := map[string]bool{}, map[string]bool{}
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
		for _, st := range p.GetStages() {
			row, ok := rows[st.GetStage()]
			if !ok {
				row = &stagesv1.FunnelStage{Stage: st.GetStage(), Name: st.GetName(), OwnerTeam: st.GetOwnerTeam()}
				rows[st.GetStage()] = row
				out.Stages = append(out.Stages, row)
			}
			row.Current += st.GetCurrent()
			row.Entered += st.GetEntered()
			row.Converted += st.GetConverted()
			row.Dropped += st.GetDropped()
			row.DropoffSignals += st.GetDropoffSignals()
			row.Churned += st.GetChurned()
			row.EnteredDirectly += st.GetEnteredDirectly()
			row.TimesInStageNs = append(row.TimesInStageNs, st.GetTimesInStageNs()...)
		}
	}
	for _, row := range out.Stages {
		if row.Entered > 0 {
			row.ConversionRate = float64(row.Converted) / float64(row.Entered)
		}
		if n := len(row.TimesInStageNs); n > 0 {
			slices.Sort(row.TimesInStageNs)
			row.MedianTimeInStage = durationpb.New(time.Duration(row.TimesInStageNs[(n-1)/2]))
			row.P90TimeInStage = durationpb.New(time.Duration(row.TimesInStageNs[(n*9+9)/10-1]))
		}
		if !keepParts {
			row.TimesInStageNs = nil
		}
	}
	out.Cohorts = Choices(cohorts)
	out.Segments = Choices(segments)
	out.NotPlacedReasons = NotPlacedReasons(reasons)
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
