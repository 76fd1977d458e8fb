package admit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestReclaimer(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{Requests: 1}, clk)
	var frees atomic.Int32
	r := &Reclaimer{Controllers: []*Controller{c}, Clock: clk, Interval: time.Second, Idle: 3 * time.Second, Settle: 7 * time.Second,
		Free: func() { frees.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// tick advances one interval once the loop waits for it, and waits
	// until the loop has handled it (it is waiting for the next one).
	tick := func() {
		waitFor(t, "the reclaimer waits", func() bool { return clk.Waiters() == 1 })
		clk.Advance(time.Second)
		waitFor(t, "the reclaimer checked", func() bool { return clk.Waiters() == 1 })
	}
	var held *Ticket
	steps := []struct {
		name      string
		do        func()
		ticks     int
		wantFrees int32
	}{
		{name: "idle from the start: nothing to give back", ticks: 5, wantFrees: 0},
		{name: "load", do: func() { tk, _ := c.TryAcquire("", 0); tk.Release() }, ticks: 1, wantFrees: 0},
		{name: "quiet, but not yet for long enough", ticks: 2, wantFrees: 0},
		{name: "quiet for Idle", ticks: 1, wantFrees: 1},
		{name: "again every Idle until Settle", ticks: 3, wantFrees: 2},
		{name: "then no more until the next spell", ticks: 10, wantFrees: 2},
		{name: "a long request holds it off", do: func() { held, _ = c.TryAcquire("", 0) }, ticks: 10, wantFrees: 2},
		{name: "sheds are load too", do: func() { _, _ = c.TryAcquire("", 0) }, ticks: 1, wantFrees: 2},
		{name: "the request ends", do: func() { held.Release() }, ticks: 4, wantFrees: 3},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		for range s.ticks {
			tick()
		}
		if got := frees.Load(); got != s.wantFrees {
			t.Fatalf("%s: %d frees, want %d", s.name, got, s.wantFrees)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestReclaimerFreesForReal runs the default Free once: it must not fail.
func TestReclaimerFreesForReal(t *testing.T) {
	clk := clock.NewManual(t0)
	c := New("test", Limits{}, clk)
	r := &Reclaimer{Controllers: []*Controller{c}, Clock: clk, Interval: time.Second, Idle: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tk, _ := c.TryAcquire("", 0)
	tk.Release()
	for range 2 {
		waitFor(t, "the reclaimer waits", func() bool { return clk.Waiters() == 1 })
		clk.Advance(time.Second)
	}
	waitFor(t, "the reclaimer waits again", func() bool { return clk.Waiters() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
