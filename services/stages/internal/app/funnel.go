package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// Funnel reports per stage of the active version of a journey (jid "": the
// workspace's default journey) entered, converted, dropped, conversion and
// time in stage, from the stage visits recorded on every transition,
// narrowed to a cohort and a segment when set. With parts it keeps every
// finished stay's time in stage, for a merge with other replicas' funnels.
func (a *App) Funnel(_ context.Context, ws, jid, cohort, segment string, parts bool) (*stagesv1.GetFunnelResponse, error) {
	var resp *stagesv1.GetFunnelResponse
	err := a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, jid)
		if err != nil {
			return err
		}
		def, err := store.GetDefinition(tx, ws, id, 0)
		if err != nil {
			return err
		}
		j, err := a.journey(tx, ws, id, def.GetVersion())
		if err != nil {
			return err
		}
		part, err := funnelPart(tx, store.Live, ws, id, def, cohort, segment, j, a.clock.Now())
		if err != nil {
			return err
		}
		resp = aggregate.Funnel([]*stagesv1.GetFunnelResponse{part}, parts)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("funnel: %w", err)
	}
	return resp, nil
}

// computeFunnel is the funnel of the accounts in this process, without
// not-placed reasons.
func computeFunnel(tx *pstore.Tx, ns store.Namespace, ws, jid string, def *stagesv1.JourneyDefinition, cohort, segment string) (*stagesv1.GetFunnelResponse, error) {
	part, err := funnelPart(tx, ns, ws, jid, def, cohort, segment, nil, time.Time{})
	if err != nil {
		return nil, err
	}
	return aggregate.Funnel([]*stagesv1.GetFunnelResponse{part}, false), nil
}

// funnelPart counts the visits of this process's accounts and keeps every
// finished stay's time in stage, the part that aggregate.Funnel merges with
// other replicas' parts (or finishes alone). Every account of the journey
// is counted once: in a stage (an open visit), churned, or not placed;
// with j set, the not-placed ones are explained by j's first stage at now.
func funnelPart(tx *pstore.Tx, ns store.Namespace, ws, jid string, def *stagesv1.JourneyDefinition, cohort, segment string, j *journey.Journey, now time.Time) (*stagesv1.GetFunnelResponse, error) {
	first := ""
	if len(def.GetStages()) > 0 {
		first = def.GetStages()[0].GetId()
	}
	rows := make(map[string]*stagesv1.FunnelStage, len(def.GetStages()))
	resp := &stagesv1.GetFunnelResponse{}
	for _, st := range def.GetStages() {
		row := &stagesv1.FunnelStage{Stage: st.GetId(), Name: st.GetName(), OwnerTeam: st.GetOwnerTeam()}
		rows[st.GetId()] = row
		resp.Stages = append(resp.Stages, row)
	}
	cohorts, segments := map[string]bool{}, map[string]bool{}
	// lastInStage is the last account counted as in a stage (with an open
	// visit); visits are keyed by account, so an account's are a run.
	var lastInStage string
	err := ns.Visits(tx, ws, jid, func(v *store.Visit) error {
		cohorts[v.Cohort] = true
		segments[v.Segment] = true
		if (cohort != "" && v.Cohort != cohort) || (segment != "" && v.Segment != segment) {
			return nil
		}
		if v.Outcome == store.OutcomeOpen && v.Account != lastInStage {
			lastInStage = v.Account
			resp.Accounts++
		}
		row, ok := rows[v.Stage]
		if !ok {
			return nil // a stage removed from the definition
		}
		row.Entered++
		if v.Placed && v.Stage != first {
			row.EnteredDirectly++
		}
		switch v.Outcome {
		case store.OutcomeOpen:
			row.Current++
		case store.OutcomeConverted:
			row.Converted++
		case store.OutcomeChurned:
			row.Churned++
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
	// The accounts in no stage: churned, or not placed yet.
	var ev *journey.Evaluator
	if j != nil {
		ev = j.NewEvaluator()
	}
	reasons := map[string]int64{}
	err = ns.Accounts(tx, ws, jid, nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
		if aj.GetStage() != "" {
			return true, nil // counted from its open visit
		}
		tr := aj.GetTraits()
		if (cohort != "" && tr["cohort"] != cohort) || (segment != "" && tr["segment"] != segment) {
			return true, nil
		}
		lc, err := lifecycleOf(tx, ns, jid, aj)
		if err != nil {
			return false, err
		}
		if account.StatusOf(lc.GetStatus()) == account.StatusChurned {
			resp.Churned++
			return true, nil
		}
		resp.NotPlaced++
		resp.Accounts++
		if ev != nil {
			acc, err := ns.GetAccount(tx, ws, jid, aj.GetAccountId())
			if err != nil {
				return false, err
			}
			for _, r := range ev.NotPlaced(acc.Aggs, now) {
				reasons[r]++
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	resp.NotPlacedReasons = aggregate.NotPlacedReasons(reasons)
	resp.TotalAccounts = resp.Accounts + resp.Churned
	for _, row := range resp.Stages {
		slices.Sort(row.TimesInStageNs)
	}
	resp.Cohorts = aggregate.Choices(cohorts)
	resp.Segments = aggregate.Choices(segments)
	return resp, nil
}
