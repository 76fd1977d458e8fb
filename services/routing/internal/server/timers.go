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
			cals := map[string]*hours.Calendar{}
			for _, tm := range due {
				t, err := s.fireTx(store.In(btx, tm.Workspace), tm, now, cals)
				if err != nil {
					return fmt.Errorf("fire %s timer of %s/%s: %w", tm.Kind, tm.Workspace, tm.AssignmentID, err)
				}
				if t != 0 {
					breached = append(breached, t)
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
