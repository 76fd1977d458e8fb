package server

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/services/routing/internal/hours"
	"github.com/cairn-dev/cairn/services/routing/internal/rules"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// FireDue fires every timer due at the clock's current time, in batches of
// one transaction each, and returns how many fired. Timers that fell due
// while the service was down fire here on the first call after a restart.
func (s *Service) FireDue(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		now := s.clk.Now()
		var (
			n        int
			breached []routingv1.HandoffType
		)
		err := s.db.Update(func(btx *bbolt.Tx) error {
			n, breached = 0, breached[:0]
			due, err := store.DueTimers(btx, now, s.batch)
			if err != nil {
				return err
			}
			b := &fireBatch{cals: map[string]*hours.Calendar{}, policies: map[string]*routingv1.SlaPolicy{}}
			// One Tx per workspace for the whole batch keeps its bucket
			// handles, and defers the owners' load counters to one write
			// each at the end.
			txs := map[string]*store.Tx{}
			for _, tm := range due {
				tx, ok := txs[tm.Workspace]
				if !ok {
					tx = store.In(btx, tm.Workspace)
					tx.DeferLoad()
					txs[tm.Workspace] = tx
				}
				t, err := s.fireTx(tx, tm, now, b)
				if err != nil {
					return fmt.Errorf("fire %s timer of %s/%s: %w", tm.Kind, tm.Workspace, tm.AssignmentID, err)
				}
				if t != 0 {
					breached = append(breached, t)
				}
			}
			for ws, tx := range txs {
				if err := tx.FlushLoad(); err != nil {
					return fmt.Errorf("write owner load of %s: %w", ws, err)
				}
			}
			n = len(due)
			return nil
		})
		if err != nil {
			return total, err
		}
		for _, t := range breached {
			s.breaches.WithLabelValues(rules.TypeName(t)).Inc()
		}
		total += n
		s.fired += n
		if s.AfterFire != nil && n > 0 {
			s.AfterFire(s.fired)
		}
		// A fired warning may arm a timer that is already due (after
		// downtime), so keep going until a pass finds nothing.
		if n == 0 {
			break
		}
	}
	return total, nil
}

// fireBatch caches, for one transaction of fired timers, the calendars by
// workspace and owner and the SLA policies by workspace and name.
type fireBatch struct {
	cals     map[string]*hours.Calendar
	policies map[string]*routingv1.SlaPolicy
}

// RunTimers is the timer loop: it fires due timers, then sleeps on the clock
// until the earliest pending timer is due or a new timer is armed, until ctx
// ends.
func (s *Service) RunTimers(ctx context.Context) error {
	for {
		if _, err := s.FireDue(ctx); err != nil {
			return err
		}
		var (
			next time.Time
			ok   bool
		)
		if err := s.db.View(func(btx *bbolt.Tx) error {
			next, ok = store.NextTimer(btx)
			return nil
		}); err != nil {
			return fmt.Errorf("read next timer: %w", err)
		}
		var due <-chan time.Time
		if ok {
			due = s.clk.After(next.Sub(s.clk.Now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-due:
		}
	}
}
