package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// timerBatch bounds one timer transaction.
const timerBatch = 512

// maxTimerWait bounds a sleep so timers armed while sleeping are not missed
// for long.
const maxTimerWait = time.Minute

// FireDue evaluates every account whose daily check is due at the clock's
// current time, re-arming each. It returns how many it evaluated.
func (a *App) FireDue() (int, error) {
	total := 0
	for {
		now := a.clk.Now()
		n := 0
		err := a.db.Update(func(tx *kv.Tx) error {
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
				cm, err := a.Model(tx, ws)
				if err != nil {
					return err
				}
				if err := a.scoreInTx(tx, ws, groups[ws], cm, now); err != nil {
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

// RunTimers fires due timers until ctx ends, sleeping on the service clock
// until the next one is due. Timers live in bbolt, so they survive restarts.
func (a *App) RunTimers(ctx context.Context) error {
	for {
		if _, err := a.FireDue(); err != nil {
			a.logger.Error("daily timers failed", "err", err)
		}
		wait := maxTimerWait
		if err := a.db.View(func(tx *kv.Tx) error {
			next, ok, err := store.NextTimer(tx)
			if err == nil && ok {
				wait = min(wait, max(0, next.Sub(a.clk.Now())))
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
		case <-a.clk.After(wait):
		}
	}
}
