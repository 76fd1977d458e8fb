package server

import (
	"context"
	"fmt"
	"slices"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
	"go.etcd.io/bbolt"
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
		part, err := funnelPart(tx, store.Live, ws, id, def, req.GetCohort(), req.GetSegment())
		if err != nil {
			return err
		}
		resp = aggregate.Funnel([]*stagesv1.GetFunnelResponse{part}, req.GetParts())
		return nil
	})
	if err != nil {
		return nil, s.toStatus(fmt.Errorf("funnel: %w", err))
	}
	return resp, nil
}

// computeFunnel is the funnel of the accounts in this process.
func computeFunnel(tx *bbolt.Tx, ns store.Namespace, ws, jid string, def *stagesv1.JourneyDefinition, cohort, segment string) (*stagesv1.GetFunnelResponse, error) {
	part, err := funnelPart(tx, ns, ws, jid, def, cohort, segment)
	if err != nil {
		return nil, err
	}
	return aggregate.Funnel([]*stagesv1.GetFunnelResponse{part}, false), nil
}

// funnelPart counts the visits of this process's accounts and keeps every
// finished stay's time in stage, the part that aggregate.Funnel merges with
// other replicas' parts (or finishes alone).
func funnelPart(tx *bbolt.Tx, ns store.Namespace, ws, jid string, def *stagesv1.JourneyDefinition, cohort, segment string) (*stagesv1.GetFunnelResponse, error) {
	rows := make(map[string]*stagesv1.FunnelStage, len(def.GetStages()))
	resp := &stagesv1.GetFunnelResponse{}
	for _, st := range def.GetStages() {
		row := &stagesv1.FunnelStage{Stage: st.GetId(), Name: st.GetName(), OwnerTeam: st.GetOwnerTeam()}
		rows[st.GetId()] = row
		resp.Stages = append(resp.Stages, row)
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
		row, ok := rows[v.Stage]
		if !ok {
			return nil // a stage removed from the definition
		}
		row.Entered++
		switch v.Outcome {
		case store.OutcomeOpen:
			row.Current++
		case store.OutcomeConverted:
			row.Converted++
		}
		// Dropped means did not make it: went back, or is still in the stage
		// with a drop-off signal open. A stay flagged on the way that then
		// converted counts only among the drop-off signals.
		if v.Outcome == store.OutcomeRegressed || (v.Outcome == store.OutcomeOpen && v.DropoffOpen) {
			row.Dropped++
		}
		if v.Dropoff {
			row.DropoffSignals++
		}
		if !v.Left.IsZero() {
			row.TimesInStageNs = append(row.TimesInStageNs, int64(v.Left.Sub(v.Entered)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, row := range resp.Stages {
		slices.Sort(row.TimesInStageNs)
	}
	resp.Cohorts = aggregate.Choices(cohorts)
	resp.Segments = aggregate.Choices(segments)
	return resp, nil
}
