package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"

	"github.com/cairn-dev/cairn/services/health/internal/backtest"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// timerBatch bounds one timer transaction.
const timerBatch = 512

// maxTimerWait bounds a sleep so timers armed while sleeping are not missed
// for long.
const maxTimerWait = time.Minute

// FireDue evaluates every account whose daily check is due at the clock's
// current time, re-arming each. It returns how many it evaluated.
func (e *Engine) FireDue(db *kv.DB) (int, error) {
	total := 0
	for {
		now := e.clk.Now()
		n := 0
		err := db.Update(func(tx *bbolt.Tx) error {
			due, err := store.DueTimers(tx, now, timerBatch)
			if err != nil {
				return err
			}
			n = len(due)
			// Group by workspace and score each group like a rescore chunk,
			// so the midnight wave of timers uses every core.
			var order []string
			groups := map[string][]string{}
			for _, t := range due {
				if _, _, err := store.GetAccountRaw(tx, t.Workspace, t.Account); errors.Is(err, store.ErrNotFound) {
					// Forgotten account: drop its timer.
					if err := store.DeleteAccount(tx, t.Workspace, t.Account); err != nil {
						return err
					}
					continue
				} else if err != nil {
					return err
				}
				if _, ok := groups[t.Workspace]; !ok {
					order = append(order, t.Workspace)
				}
				groups[t.Workspace] = append(groups[t.Workspace], t.Account)
			}
			for _, ws := range order {
				cm, err := e.Model(tx, ws)
				if err != nil {
					return err
				}
				if err := e.scoreInTx(tx, ws, groups[ws], cm, now); err != nil {
					return fmt.Errorf("timers of workspace %q: %w", ws, err)
				}
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("fire due timers: %w", err)
		}
		total += n
		if n < timerBatch {
			return total, nil
		}
	}
}

// RunTimers fires due timers until ctx ends, sleeping on the engine clock
// until the next one is due. Timers live in bbolt, so they survive restarts.
func (e *Engine) RunTimers(ctx context.Context, db *kv.DB) error {
	for {
		if _, err := e.FireDue(db); err != nil {
			e.logger.Error("daily timers failed", "err", err)
		}
		wait := maxTimerWait
		if err := db.View(func(tx *bbolt.Tx) error {
			next, ok, err := store.NextTimer(tx)
			if err == nil && ok {
				wait = min(wait, max(0, next.Sub(e.clk.Now())))
			}
			return err
		}); err != nil {
			return fmt.Errorf("read next timer: %w", err)
		}
		if wait <= 0 {
			wait = time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.clk.After(wait):
		}
	}
}

// DefaultHorizonDays is the backtest horizon when none is given.
const DefaultHorizonDays = 90

// Backtest scores m against every renewal, churn and expansion recorded for
// the workspace, using the snapshot taken horizonDays before each outcome.
// Expansions count with renewals as good outcomes. With parts the answer
// also carries every scored sample, for a merge with other replicas'.
func (e *Engine) Backtest(tx *bbolt.Tx, ws string, m *healthv1.Model, horizonDays int32, parts bool) (*healthv1.BacktestResponse, error) {
	if horizonDays <= 0 {
		horizonDays = DefaultHorizonDays
	}
	var samples []backtest.Sample
	err := store.ForEachAccount(tx, ws, func(a *store.Account) error {
		for _, o := range a.Agg.Outcomes {
			day := time.Unix(o.At, 0).UTC().AddDate(0, 0, -int(horizonDays)).Format(time.DateOnly)
			snap, err := store.SnapshotAt(tx, ws, a.Agg.AccountID, day)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
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
