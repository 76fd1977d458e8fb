package app

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// Funnel reports per stage of the active version of a journey (q.Journey
// "": the workspace's default journey) entered, converted, dropped,
// conversion, time in stage and time to convert, from the stage visits
// recorded on every transition, narrowed by q (FunnelQuery), with the
// overall conversion and, when asked, a breakdown, a trend and the
// accounts behind a figure. With parts it keeps every finished stay's time
// in stage and time to convert, for a merge with other replicas' funnels.
func (a *App) Funnel(_ context.Context, ws string, q *journey.FunnelQuery, parts bool) (*stagesv1.GetFunnelResponse, error) {
	var resp *stagesv1.GetFunnelResponse
	err := a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, q.Journey)
		if err != nil {
			return err
		}
		def, err := store.GetDefinition(tx, ws, id, 0)
		if err != nil {
			return err
		}
		if st := q.FigureStage; st != "" && !slices.ContainsFunc(def.GetStages(), func(s *stagesv1.Stage) bool { return s.GetId() == st }) {
			var known []string
			for _, s := range def.GetStages() {
				known = append(known, s.GetId())
			}
			return apierr.Field("accounts_stage", "unknown stage %q in journey %q; its stages are %s", st, id, strings.Join(known, ", "))
		}
		j, err := a.journey(tx, ws, id, def.GetVersion())
		if err != nil {
			return err
		}
		part, err := funnelPart(tx, store.Live, ws, id, def, q, j, a.clock.Now())
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
	part, err := funnelPart(tx, ns, ws, jid, def, &journey.FunnelQuery{Cohort: cohort, Segment: segment}, nil, time.Time{})
	if err != nil {
		return nil, err
	}
	return aggregate.Funnel([]*stagesv1.GetFunnelResponse{part}, false), nil
}

// funnelPart counts the visits of this process's accounts (funnelCounter)
// and keeps every finished stay's time in stage and time to convert, the
// part that aggregate.Funnel merges with other replicas' parts (or
// finishes alone). Every account of the journey is counted once: in a
// stage (an open visit), churned, or not placed; with j set, the
// not-placed ones are explained by j's first stage at now.
func funnelPart(tx *pstore.Tx, ns store.Namespace, ws, jid string, def *stagesv1.JourneyDefinition, q *journey.FunnelQuery, j *journey.Journey, now time.Time) (*stagesv1.GetFunnelResponse, error) {
	c := newFunnelCounter(def, q)
	err := ns.Visits(tx, ws, jid, func(v *store.Visit) error {
		c.add(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp := c.done()
	// The accounts in no stage: churned, or not placed yet.
	var ev *journey.Evaluator
	if j != nil {
		ev = j.NewEvaluator()
	}
	reasons := map[string]int64{}
	// The accounts in a stage were counted from their open visits.
	err = ns.AccountsInNoStage(tx, ws, jid, func(aj *stagesv1.AccountJourney) error {
		tr := aj.GetTraits()
		if (q.Cohort != "" && tr["cohort"] != q.Cohort) || (q.Segment != "" && tr["segment"] != q.Segment) || (q.Plan != "" && tr["plan"] != q.Plan) {
			return nil
		}
		lc, err := lifecycleOf(tx, ns, jid, aj)
		if err != nil {
			return err
		}
		if account.StatusOf(lc.GetStatus()) == account.StatusChurned {
			resp.Churned++
			return nil
		}
		resp.NotPlaced++
		resp.Accounts++
		if ev != nil {
			acc, err := ns.GetAccount(tx, ws, jid, aj.GetAccountId())
			if err != nil {
				return err
			}
			for _, r := range ev.NotPlaced(acc.Aggs, now) {
				reasons[r]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp.NotPlacedReasons = aggregate.NotPlacedReasons(reasons)
	resp.TotalAccounts = resp.Accounts + resp.Churned
	return resp, nil
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
