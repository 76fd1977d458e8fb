package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	kv "github.com/cairn-dev/cairn/pkg/store"
	"go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-dev/cairn/services/health/internal/aggregate"
	"github.com/cairn-dev/cairn/services/health/internal/backtest"
	"github.com/cairn-dev/cairn/services/health/internal/model"
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
				if err := e.rescoreChunk(tx, ws, groups[ws], cm, now); err != nil {
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

// rescoreChunk is how many accounts a rescore reads, computes in parallel
// and writes at a time.
const rescoreChunk = 4096

// Rescore recomputes every account of a workspace with its active model at
// the clock's current time. Accounts are committed rescoreChunk at a time:
// one huge bbolt transaction grows superlinearly, and a rescore interrupted
// midway is safe to run again. Decoding and scoring run on every CPU; reads
// and writes stay on the transaction's goroutine. It returns the account
// count.
func (e *Engine) Rescore(ctx context.Context, db *kv.DB, ws string) (int, error) {
	now := e.clk.Now()
	var ids []string
	var cm *model.Compiled
	if err := db.View(func(tx *bbolt.Tx) error {
		var err error
		if cm, err = e.Model(tx, ws); err != nil {
			return err
		}
		ids, err = store.AccountIDs(tx, ws)
		return err
	}); err != nil {
		return 0, fmt.Errorf("list accounts to rescore: %w", err)
	}
	n := 0
	for start := 0; start < len(ids); start += e.chunk {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		chunk := ids[start:min(start+e.chunk, len(ids))]
		if err := db.Update(func(tx *bbolt.Tx) error { return e.rescoreChunk(tx, ws, chunk, cm, now) }); err != nil {
			return n, fmt.Errorf("rescore workspace: %w", err)
		}
		n += len(chunk)
	}
	return n, nil
}

func (e *Engine) rescoreChunk(tx *bbolt.Tx, ws string, ids []string, cm *model.Compiled, now time.Time) error {
	type job struct {
		agg, meta, health []byte
		at                time.Time
		pr                priors
		st                *state
		out               *outcome
		err               error
	}
	jobs := make([]job, 0, len(ids))
	for _, id := range ids {
		agg, meta, err := store.GetAccountRaw(tx, ws, id)
		if err != nil {
			return err
		}
		hraw, err := store.GetHealthRaw(tx, ws, id)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{agg: agg, meta: meta, health: hraw})
	}
	// Trend inputs are read here, on the transaction's goroutine; the
	// evaluation time only depends on the account's last evaluation.
	b := e.newBatch(tx)
	for i := range jobs {
		j := &jobs[i]
		meta, err := store.DecodeMeta(j.meta)
		if err != nil {
			return fmt.Errorf("rescore %q: %w", ids[i], err)
		}
		j.at = asOf(&store.Account{Meta: *meta}, now)
		if j.pr, err = b.priors(ws, ids[i], j.at); err != nil {
			return err
		}
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(jobs); i += workers {
				j := &jobs[i]
				acc, err := store.DecodeAccount(j.agg, j.meta)
				if err != nil {
					j.err = err
					continue
				}
				j.st = &state{acc: acc}
				if j.health != nil {
					j.st.health = &healthv1.AccountHealth{}
					if err := proto.Unmarshal(j.health, j.st.health); err != nil {
						j.err = fmt.Errorf("decode health: %w", err)
						continue
					}
				}
				j.out, j.err = compute(j.st, cm, j.at, j.pr)
			}
		}(w)
	}
	wg.Wait()
	for i := range jobs {
		j := &jobs[i]
		if j.err != nil {
			return fmt.Errorf("rescore %q: %w", ids[i], j.err)
		}
		if err := b.commit(j.st, j.out); err != nil {
			return fmt.Errorf("rescore %q: %w", ids[i], err)
		}
		if err := store.PutAccount(tx, j.st.acc, false); err != nil {
			return err
		}
	}
	return nil
}

// DefaultHorizonDays is the backtest horizon when none is given.
const DefaultHorizonDays = 90

// Backtest scores m against every renewal, churn and expansion recorded for
// the workspace, using the snapshot taken horizonDays before each outcome.
// Expansions count with renewals as good outcomes.
func (e *Engine) Backtest(tx *bbolt.Tx, ws string, m *healthv1.Model, horizonDays int32) (*healthv1.BacktestResponse, error) {
	if horizonDays <= 0 {
		horizonDays = DefaultHorizonDays
	}
	var samples []backtest.Sample
	err := store.ForEachAccount(tx, ws, func(a *store.Account) error {
		for _, o := range a.Agg.Outcomes {
			day := o.At.AddDate(0, 0, -int(horizonDays)).Format(time.DateOnly)
			snap, err := store.SnapshotAt(tx, ws, a.Agg.Account, day)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			samples = append(samples, backtest.Sample{
				Churned: o.Kind == aggregate.OutcomeChurned,
				Input:   backtest.Input{Values: snap.Raw, When: snap.When},
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collect backtest samples: %w", err)
	}
	return backtest.Run(m, samples, horizonDays)
}
