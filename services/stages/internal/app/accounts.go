package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/stages/internal/insight"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// AccountJourney returns an account's journey (jid "": the workspace's
// default journey) with its status (derived from its aggregates), its time
// in stage and, evaluated now, the current stage's exit and drop-off
// criteria: what is left. as_of is now.
func (a *App) AccountJourney(_ context.Context, ws, jid, acct string) (*stagesv1.AccountJourney, error) {
	now := a.clock.Now()
	var aj *stagesv1.AccountJourney
	err := a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, jid)
		if err != nil {
			return err
		}
		acc, err := store.Live.GetAccount(tx, ws, id, acct)
		if err != nil {
			return err
		}
		aj = acc.Journey
		aj.AsOf = timestamppb.New(now)
		aj.Lifecycle = acc.Aggs.Lifecycle().Proto()
		if aj.GetStage() == "" {
			return nil
		}
		j, err := a.journey(tx, ws, id, aj.GetVersion())
		if err != nil {
			return err
		}
		entered := aj.GetEnteredAt().AsTime()
		if now.After(entered) {
			aj.TimeInStage = durationpb.New(now.Sub(entered))
		}
		aj.ExitCriteria, aj.DropoffCriteria = j.NewEvaluator().Explain(acc.Aggs, journey.State{Stage: aj.GetStage(), EnteredAt: entered}, now)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get journey of account %q: %w", acct, err)
	}
	return aj, nil
}

// ListAccounts lists up to size accounts of a journey (jid "": the
// workspace's default journey) that match f (by default the live, placed
// ones; journey.AccountFilter), in store key order after the
// key after (nil: from the start). It returns the key of the last one,
// where the next page starts, and whether more follow.
func (a *App) ListAccounts(_ context.Context, ws, jid string, f journey.AccountFilter, after []byte, size int) (accounts []*stagesv1.AccountSummary, last []byte, more bool, err error) {
	now := a.clock.Now()
	err = a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, jid)
		if err != nil {
			return err
		}
		if err := checkStage(tx, ws, id, f.Stage); err != nil {
			return err
		}
		features := map[uint32][]string{}
		var scratch account.Scratch
		return store.Live.Accounts(tx, ws, id, after, func(key []byte, aj *stagesv1.AccountJourney) (bool, error) {
			lc, err := lifecycleOf(tx, store.Live, id, aj)
			if err != nil {
				return false, err
			}
			if !f.Matches(aj, account.StatusOf(lc.GetStatus())) {
				return true, nil
			}
			if len(accounts) == size {
				more = true
				return false, nil
			}
			accounts = append(accounts, &stagesv1.AccountSummary{
				AccountId: aj.GetAccountId(), Name: aj.GetTraits()["name"], Stage: aj.GetStage(), EnteredAt: aj.GetEnteredAt(),
				Segment: aj.GetTraits()["segment"], Owner: journey.Owner(aj), OpenSignals: int32(len(aj.GetOpenSignals())),
				Status: lc.GetStatus(), StatusSince: lc.GetSince(), Traits: maps.Clone(aj.GetTraits()),
			})
			if f.Milestones {
				m, err := milestones(tx, ws, id, aj, features, &scratch, now)
				if err != nil {
					return false, err
				}
				accounts[len(accounts)-1].Milestones = m
			}
			last = append(last[:0], key...)
			return true, nil
		})
	})
	if err != nil {
		return nil, nil, false, err
	}
	return accounts, last, more, nil
}

// ListSignals lists up to size signals that match f, in store key order
// after the key after (nil: from the start). It returns the key of the
// last one and whether more follow.
func (a *App) ListSignals(_ context.Context, ws string, f journey.SignalFilter, after []byte, size int) (signals []*commonv1.Signal, last []byte, more bool, err error) {
	err = a.db.View(func(tx *pstore.Tx) error {
		return store.Live.Signals(tx, ws, f.AccountID, after, func(key []byte, sg *commonv1.Signal) (bool, error) {
			if !f.Matches(sg) {
				return true, nil
			}
			if len(signals) == size {
				more = true
				return false, nil
			}
			signals = append(signals, sg)
			last = append(last[:0], key...)
			return true, nil
		})
	})
	if err != nil {
		return nil, nil, false, err
	}
	return signals, last, more, nil
}

// milestones reads an account's milestones from its aggregates, decoded
// into s without the daily buckets older than features_used("30d") reads.
// features caches each journey version's features list.
func milestones(tx *pstore.Tx, ws, jid string, aj *stagesv1.AccountJourney, features map[uint32][]string, s *account.Scratch, now time.Time) (*stagesv1.AccountMilestones, error) {
	ag, err := store.Live.Aggregates(tx, ws, jid, aj.GetAccountId(), s, account.DayOf(now)-milestoneDays)
	if err != nil {
		return nil, err
	}
	fs, ok := features[aj.GetVersion()]
	if !ok && aj.GetVersion() != 0 {
		def, err := store.GetDefinition(tx, ws, jid, aj.GetVersion())
		if err != nil {
			return nil, err
		}
		fs = def.GetFeatures()
		features[aj.GetVersion()] = fs
	}
	m := &stagesv1.AccountMilestones{
		Lifecycle:        ag.Lifecycle().Proto(),
		FeaturesUsed_30D: int32(ag.FeaturesUsed(fs, milestoneDays, now)),
		Arr:              ag.ARR,
	}
	if t := insight.FirstValue(ag); t != 0 {
		m.FirstValueAt = timestamppb.New(time.Unix(t, 0))
	}
	if ag.ContractEnd != 0 {
		m.ContractEnd = timestamppb.New(time.Unix(ag.ContractEnd, 0))
	}
	for _, c := range ag.ARRHistory {
		m.ArrHistory = append(m.ArrHistory, &stagesv1.ArrChange{At: timestamppb.New(time.Unix(c.At, 0)), Arr: c.ARR})
	}
	for _, o := range ag.Outcomes {
		if o.Kind == account.OutcomeRenewed {
			m.RenewedAt = append(m.RenewedAt, timestamppb.New(time.Unix(o.At, 0)))
		}
	}
	return m, nil
}

// milestoneDays is the window of AccountMilestones.features_used_30d.
const milestoneDays = 30

// lifecycleOf is the account's lifecycle as kept on its journey state, or,
// for state written before stages kept it, derived from its aggregates.
func lifecycleOf(tx *pstore.Tx, ns store.Namespace, jid string, aj *stagesv1.AccountJourney) (*commonv1.Lifecycle, error) {
	if lc := aj.GetLifecycle(); lc.GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
		return lc, nil
	}
	acc, err := ns.GetAccount(tx, aj.GetWorkspace(), jid, aj.GetAccountId())
	if err != nil {
		return nil, err
	}
	return acc.Aggs.Lifecycle().Proto(), nil
}

// checkStage refuses a stage filter that names no stage of the journey:
// an empty answer would say no account is in it, when the caller most
// likely misspelt it. A stage of any version counts, since accounts placed
// under an older version may still be in a stage the newest one dropped.
// A journey with no versions is not checked (its list is empty anyway).
func checkStage(tx *pstore.Tx, ws, id, stage string) error {
	if stage == "" {
		return nil
	}
	var known []string
	found := false
	err := store.Versions(tx, ws, id, 0, func(def *stagesv1.JourneyDefinition) (bool, error) {
		for _, st := range def.GetStages() {
			if st.GetId() == stage {
				found = true
				return false, nil
			}
			if !slices.Contains(known, st.GetId()) {
				known = append(known, st.GetId())
			}
		}
		return true, nil
	})
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	case found || len(known) == 0:
		return nil
	}
	return apierr.Field("stage", "unknown stage %q in journey %q; its stages are %s", stage, id, strings.Join(known, ", "))
}
