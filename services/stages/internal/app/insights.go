package app

import (
	"context"
	"fmt"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/stages/internal/insight"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// MomentsOfTruth reports, over the accounts of the workspace's default
// journey (narrowed to a cohort and a segment when set), the share of
// contracted accounts reaching each of insight.Moments in time.
func (a *App) MomentsOfTruth(_ context.Context, ws, cohort, segment string) (*stagesv1.GetMomentsOfTruthResponse, error) {
	now := a.clock.Now().Unix()
	moments := insight.Moments()
	out := make([]*stagesv1.Moment, len(moments))
	for i, m := range moments {
		out[i] = &stagesv1.Moment{Name: m.Name, Description: m.Description}
	}
	err := a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, "")
		if err != nil {
			return err
		}
		return store.Live.Accounts(tx, ws, id, nil, func(_ []byte, aj *stagesv1.AccountJourney) (bool, error) {
			if cohort != "" && aj.GetTraits()["cohort"] != cohort {
				return true, nil
			}
			if segment != "" && aj.GetTraits()["segment"] != segment {
				return true, nil
			}
			acc, err := store.Live.GetAccount(tx, ws, id, aj.GetAccountId())
			if err != nil {
				return false, err
			}
			insight.Count(out, moments, acc.Aggs, now)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("moments of truth: %w", err)
	}
	// Counts add across replicas; the rate is aggregate.Moments', so one
	// replica and the gateway's merge of several compute it the same way.
	return aggregate.Moments([]*stagesv1.GetMomentsOfTruthResponse{{Moments: out}}), nil
}

// BuyingCommittee reports the personas engaged on an account and the stuck
// signals of its buying process.
func (a *App) BuyingCommittee(_ context.Context, ws, acct string) (*stagesv1.GetBuyingCommitteeResponse, error) {
	var acc *store.Account
	err := a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, "")
		if err != nil {
			return err
		}
		acc, err = store.Live.GetAccount(tx, ws, id, acct)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("buying committee of %q: %w", acct, err)
	}
	return insight.Committee(acc.Aggs, a.clock.Now()), nil
}
