package admit

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
)

// Reclaimer gives memory back to the OS once a burst of load is over.
//
// Without it, a process that stops receiving requests also stops
// allocating, so the collector has no reason to run: the heap grown under
// load (and the request buffers pooled in sync.Pools, which only a
// collection empties) stays resident until the runtime's two-minute forced
// collection and the background scavenger get to it. The Reclaimer watches
// the controllers and, once none has admitted anything or held anything
// for Idle after a busy spell, collects twice (a sync.Pool survives one
// collection in its victim cache) and returns the freed pages with
// debug.FreeOSMemory; and again every Idle while they stay quiet, until
// Settle after the spell, because work the burst left behind (ingestion's
// index catching up) allocates after the first time. Then it stops until
// the next busy spell, so an idle process pays nothing.
type Reclaimer struct {
	// Controllers are watched for load.
	Controllers []*Controller
	// Clock paces the checks.
	Clock clock.Clock
	// Interval between checks (default 1 s).
	Interval time.Duration
	// Idle is how long the controllers must stay quiet (default 5 s).
	Idle time.Duration
	// Settle is how long after a busy spell memory is given back, every
	// Idle (default 1 min).
	Settle time.Duration
	// Free returns memory; nil means two runtime.GC and debug.FreeOSMemory.
	Free func()
}

// Run checks until ctx ends, then returns nil.
func (r *Reclaimer) Run(ctx context.Context) error {
	clk := r.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	interval, idle := r.Interval, r.Idle
	if interval <= 0 {
		interval = time.Second
	}
	if idle <= 0 {
		idle = 5 * time.Second
	}
	settle := r.Settle
	if settle <= 0 {
		settle = time.Minute
	}
	free := r.Free
	if free == nil {
		free = func() {
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
	var (
		last     uint64 // admitted+shed seen at the previous check
		busy     bool   // load since the spell's memory was last given back
		quietFor time.Duration
		unfreed  time.Duration // quiet time since the last free
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-clk.After(interval):
		}
		var seen uint64
		var holding bool
		for _, c := range r.Controllers {
			st := c.Stats()
			seen += st.Admitted + st.Shed
			holding = holding || st.Requests > 0 || st.Waiting > 0
		}
		if seen != last || holding {
			last, busy, quietFor, unfreed = seen, true, 0, 0
			continue
		}
		if !busy {
			continue
		}
		quietFor += interval
		if unfreed += interval; unfreed >= idle {
			free()
			unfreed = 0
		}
		if quietFor >= settle {
			busy, quietFor, unfreed = false, 0, 0
		}
	}
}
