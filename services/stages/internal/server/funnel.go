package server

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// GetFunnel reports per stage entered, converted, dropped, conversion and
// time in stage, from the stage visits recorded on every transition.
func (s *Server) GetFunnel(ctx context.Context, req *stagesv1.GetFunnelRequest) (*stagesv1.GetFunnelResponse, error) {
	ws, err := auth.Workspace(ctx, req.GetWorkspace())
	if err != nil {
		return nil, err
	}
	if err := checkCohort(req.GetCohort()); err != nil {
		return nil, s.toStatus(err)
	}
	var resp *stagesv1.GetFunnelResponse
	err = s.db.View(func(tx *bbolt.Tx) error {
		id, err := resolveJourney(tx, ws, req.GetJourneyId())
		if err != nil {
			return err
		}
		def, err := store.GetDefinition(tx, ws, id, 0)
		if err != nil {
			return err
		}
		resp, err = computeFunnel(tx, store.Live, ws, id, def, req.GetCohort(), req.GetSegment())
		return err
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("funnel: %w", err))
	}
	return resp, nil
}

type stageAgg struct {
	row       *stagesv1.FunnelStage
	durations []time.Duration
}

func computeFunnel(tx *bbolt.Tx, ns store.Namespace, ws, jid string, def *stagesv1.JourneyDefinition, cohort, segment string) (*stagesv1.GetFunnelResponse, error) {
	aggs := make(map[string]*stageAgg, len(def.GetStages()))
	resp := &stagesv1.GetFunnelResponse{}
	for _, st := range def.GetStages() {
		a := &stageAgg{row: &stagesv1.FunnelStage{Stage: st.GetId(), Name: st.GetName(), OwnerTeam: st.GetOwnerTeam()}}
		aggs[st.GetId()] = a
		resp.Stages = append(resp.Stages, a.row)
	}
	cohorts, segments := map[string]bool{}, map[string]bool{}
	var lastAccount string
	err := ns.Visits(tx, ws, jid, func(v *store.Visit) error {
		cohorts[v.Cohort] = true
		segments[v.Segment] = true
		if (cohort != "" && v.Cohort != cohort) || (segment != "" && v.Segment != segment) {
			return nil
		}
		// Visits are keyed by account, so distinct accounts are runs.
		if v.Account != lastAccount {
			resp.Accounts++
			lastAccount = v.Account
		}
		a, ok := aggs[v.Stage]
		if !ok {
			return nil // a stage removed from the definition
		}
		a.row.Entered++
		switch v.Outcome {
		case store.OutcomeOpen:
			a.row.Current++
		case store.OutcomeConverted:
			a.row.Converted++
		}
		// Dropped means did not make it: went back, or is still in the stage
		// with a drop-off signal open. A stay flagged on the way that then
		// converted counts only among the drop-off signals.
		if v.Outcome == store.OutcomeRegressed || (v.Outcome == store.OutcomeOpen && v.DropoffOpen) {
			a.row.Dropped++
		}
		if v.Dropoff {
			a.row.DropoffSignals++
		}
		if !v.Left.IsZero() {
			a.durations = append(a.durations, v.Left.Sub(v.Entered))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, a := range aggs {
		if a.row.Entered > 0 {
			a.row.ConversionRate = float64(a.row.Converted) / float64(a.row.Entered)
		}
		if n := len(a.durations); n > 0 {
			slices.Sort(a.durations)
			a.row.MedianTimeInStage = durationpb.New(a.durations[(n-1)/2])
			a.row.P90TimeInStage = durationpb.New(a.durations[(n*9+9)/10-1])
		}
	}
	resp.Cohorts = sortedKeys(cohorts)
	resp.Segments = sortedKeys(segments)
	return resp, nil
}

// sortedKeys lists the non-empty keys of set in order.
func sortedKeys(set map[string]bool) []string {
	var out []string
	for k := range set {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
