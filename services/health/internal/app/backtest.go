package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/backtest"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// DefaultHorizonDays is the backtest horizon when none is given.
const DefaultHorizonDays = 90

// Backtest measures how well a model's past scores predicted the
// workspace's outcomes, using each account's snapshot horizonDays
// (DefaultHorizonDays when 0) before each outcome. The model is m, an
// unsaved valid model (ValidateModel), when not nil; else the stored model
// id, version: both zero is the active model, a zero version the newest
// stored one, an empty id the active model's id. With parts the answer also
// carries every scored sample, for a merge with other replicas' answers.
func (a *App) Backtest(_ context.Context, ws string, m *healthv1.Model, id string, version uint32, horizonDays int32, parts bool) (*healthv1.BacktestResponse, error) {
	if m != nil {
		if err := a.checkModel(m); err != nil {
			return nil, err
		}
	}
	var resp *healthv1.BacktestResponse
	err := a.db.View(func(tx *kv.Tx) error {
		m := m
		if m == nil {
			cm, err := a.Model(tx, ws)
			if err != nil {
				return err
			}
			m = cm.Model
			if id != "" || version != 0 {
				id := id
				if id == "" {
					id = m.GetId()
				}
				ver := version
				if ver == 0 {
					ms, err := store.ListModels(tx, ws, id, 0, 1)
					if err != nil {
						return err
					}
					if len(ms) == 0 {
						return fmt.Errorf("model %q: %w", id, store.ErrNotFound)
					}
					ver = ms[0].GetVersion()
				}
				if m, err = store.GetModel(tx, ws, id, ver); err != nil {
					return err
				}
			}
		}
		var err error
		resp, err = backtestIn(tx, ws, m, horizonDays, parts)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// backtestIn scores m against every renewal, churn and expansion recorded for
// the workspace, using the snapshot taken horizonDays before each outcome
// when the account was paying (customer or won back) on that snapshot's day.
// Expansions count with renewals as good outcomes. With parts the answer
// also carries every scored sample, for a merge with other replicas'.
func backtestIn(tx *kv.Tx, ws string, m *healthv1.Model, horizonDays int32, parts bool) (*healthv1.BacktestResponse, error) {
	if horizonDays <= 0 {
		horizonDays = DefaultHorizonDays
	}
	var samples []backtest.Sample
	err := store.ForEachAccount(tx, ws, func(acc *store.Account) error {
		lc := acc.Agg.Lifecycle()
		for _, o := range acc.Agg.Outcomes {
			day := time.Unix(o.At, 0).UTC().AddDate(0, 0, -int(horizonDays)).Format(time.DateOnly)
			snap, err := store.SnapshotAt(tx, ws, acc.Agg.AccountID, day)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !paidOn(lc, snap.Day) {
				// Not a customer health score: the account was a prospect
				// or trial then (a snapshot from before health scored
				// paying accounts only), or churned.
				continue
			}
			samples = append(samples, backtest.Sample{
				Churned: o.Kind == account.OutcomeChurned,
				Input:   backtest.Input{Values: snap.Raw, When: snap.When},
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collect backtest samples: %w", err)
	}
	part, err := backtest.Part(m, samples, horizonDays)
	if err != nil {
		return nil, err
	}
	return aggregate.Backtest([]*healthv1.BacktestResponse{part}, parts), nil
}

// paidOn reports whether the account's status at the end of day (YYYY-MM-DD,
// UTC) was a paying one.
func paidOn(lc account.Lifecycle, day string) bool {
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return false
	}
	end := d.Add(24*time.Hour).Unix() - 1
	var st account.Status
	for _, c := range lc.History {
		if c.At > end {
			break
		}
		st = c.Status
	}
	return st.Paying()
}
