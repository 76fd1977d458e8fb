package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// timerBatch is how many timers fire per transaction.
const timerBatch = 256

// FireDue evaluates every live account whose timer is due at now, at the
// timer's due time, and re-arms it. It returns how many timers fired.
func (a *App) FireDue(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n := 0
		err := a.db.Update(func(tx *pstore.Tx) error {
			due, err := store.DueTimers(tx, now, timerBatch)
			if err != nil {
				return err
			}
			n = len(due)
			tx.OnCommit(func() { a.timersFired.Add(float64(len(due))) })
			b := a.newBatch(tx, store.Live, nil)
			for _, t := range due {
				if err := store.Fired(tx, t); err != nil {
					return err
				}
				if t.NS != store.Live {
					continue
				}
				version, err := store.Active(tx, t.Workspace, t.Journey)
				if errors.Is(err, store.ErrNotFound) {
					continue // journey deactivated
				}
				if err != nil {
					return err
				}
				c, err := a.compiled(tx, t.Workspace, t.Journey, version)
				if err != nil {
					return err
				}
				st, err := b.load(t.Workspace, t.Journey, t.Account, c)
				if err != nil {
					return err
				}
				st.timer = time.Time{} // Fired removed it
				if st.acc.Journey.GetStage() == "" {
					continue
				}
				st.c = c
				// While the consumer backfills, it may already have applied
				// events after the due time; evaluating before them would
				// read "future" aggregates as of the past, so evaluate no
				// earlier than the newest event applied.
				at := t.Due
				if last := time.Unix(st.acc.Aggs.LastEventAt, 0); last.After(at) {
					at = last
				}
				if entered := st.acc.Journey.GetEnteredAt(); entered != nil && entered.AsTime().After(at) {
					at = entered.AsTime()
				}
				if err := b.evaluate(st, at, journey.CauseTimer, ""); err != nil {
					return err
				}
			}
			return b.flush()
		})
		if err != nil {
			return total, fmt.Errorf("fire timers: %w", err)
		}
		total += n
		// Firing re-arms timers later than their due time, so this ends; a
		// timer re-armed at or before now (catching up after downtime) fires
		// in the next round.
		if n == 0 {
			break
		}
	}
	return total, nil
}

// RunTimers fires timers as the clock reaches them until ctx ends.
func (a *App) RunTimers(ctx context.Context) error {
	for {
		// Check before firing: with a backlog of due timers the loop below
		// continues without reaching the select, and shutdown must not wait
		// for the whole backlog.
		if ctx.Err() != nil {
			return nil
		}
		now := a.clock.Now()
		wait := a.wait
		next, ok := a.nextDue()
		if ok && !next.After(now) {
			if _, err := a.FireDue(ctx, now); err != nil {
				a.logger.Error("timers failed", "err", err)
			} else {
				continue
			}
		} else if ok && next.Sub(now) < wait {
			wait = next.Sub(now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.clock.After(wait):
		case <-a.wake:
		}
	}
}

func (a *App) nextDue() (next time.Time, ok bool) {
	_ = a.db.View(func(tx *pstore.Tx) error {
		next, ok = store.NextDue(tx)
		return nil
	})
	return next, ok
}
