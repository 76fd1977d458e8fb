package app_test

import (
	"path/filepath"
	"testing"
	"time"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/store"
)

func nextTimer(t *testing.T, db *kv.DB) (time.Time, bool) {
	t.Helper()
	var due time.Time
	var ok bool
	if err := db.View(func(tx *kv.Tx) error {
		var err error
		due, ok, err = store.NextTimer(tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return due, ok
}

// TestTimerFiresWhenARuleChanges: the timer is armed for the moment a time
// rule changes (here the 120-day renewal window opening at 05:00), not only
// for the next UTC midnight, and the signal opens at that moment. An
// account that is not paying keeps no timer.
func TestTimerFiresWhenARuleChanges(t *testing.T) {
	clk := clock.NewManual(t0.Add(12 * time.Hour))
	db := openDB(t, filepath.Join(t.TempDir(), "h.db"))
	defer db.Close()
	e := newApp(t, db, clk)
	end := t0.AddDate(0, 0, 125).Add(5 * time.Hour)
	opens := end.AddDate(0, 0, -120) // day 5, 05:00

	apply(t, db, e, []*ingestionv1.LogRecord{event("p", 0, track, "u0", "trial_started")}, 10)
	if _, ok := nextTimer(t, db); ok {
		t.Fatal("a trial has a timer")
	}
	apply(t, db, e, []*ingestionv1.LogRecord{
		event("a", 0, grp, "", "", "seats", 5, "contract_end", end.Format(time.RFC3339)),
		event("a", 0, track, "u0", "billing.subscription_started", "plan", "pro"),
	}, 10)

	for _, tc := range []struct {
		clock, due time.Time
		open       bool
	}{
		{t0.AddDate(0, 0, 1), t0.AddDate(0, 0, 2), false}, // nothing changes on day 1: the midnight
		{t0.AddDate(0, 0, 5), opens, false},               // day 5: the window opens before midnight
		{opens, t0.AddDate(0, 0, 6), true},                // fired at 05:00: open, and back to midnight
	} {
		clk.Set(tc.clock)
		if n, err := e.FireDue(); err != nil || n != 1 {
			t.Fatalf("at %v: fired %d, %v", tc.clock, n, err)
		}
		if due, ok := nextTimer(t, db); !ok || !due.Equal(tc.due) {
			t.Errorf("at %v: next timer %v (%v), want %v", tc.clock, due, ok, tc.due)
		}
		var h *healthv1.AccountHealth
		_ = db.View(func(tx *kv.Tx) error { h, _ = store.GetHealth(tx, "w", "a"); return nil })
		var opened *time.Time
		for _, s := range h.GetOpenSignals() {
			if s.GetReason() == "renewal_window_120" {
				o := s.GetOpenedAt().AsTime()
				opened = &o
			}
		}
		if (opened != nil) != tc.open || (opened != nil && !opened.Equal(opens)) {
			t.Errorf("at %v: renewal_window_120 opened at %v, want open %v at %v", tc.clock, opened, tc.open, opens)
		}
	}
}
